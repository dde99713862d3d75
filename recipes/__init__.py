"""NeMo Run recipes for kollm: plain functions returning run.Partial / run.Script configs.

    from recipes import stages, pipeline
    task = stages.pretrain(cfg)            # a run.Partial
    executor = executors.for_config(cfg)   # local / slurm / docker, from cfg.run
"""
