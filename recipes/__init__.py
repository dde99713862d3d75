"""The front end: recipes (presets.py: functions returning a typed PipelineConfig), their stages as NeMo Run
tasks (stage_tasks.py) under an executor chosen by config (executors.py), the experiment (pipeline.py), and the
`kollm` command (cli.py).

    from recipes import presets, pipeline
    cfg = presets.build("1b", ["run.executor=slurm", "run.nodes=2"])
    pipeline.launch(cfg, ["pretrain"], dryrun=True)   # prints the sbatch script
"""
