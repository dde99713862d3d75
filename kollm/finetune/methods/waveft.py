"""WaveFT: a sparse set of trainable coefficients in the wavelet domain of each targeted weight
(finetune.waveft_n_frequency per layer, at most the smallest targeted layer's size)."""

from kollm.finetune.methods.method import Method


def _linear_sizes(model, targets) -> list[int]:
    import torch

    names = targets if isinstance(targets, list) else None
    return [
        m.in_features * m.out_features
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and (names is None or n.split(".")[-1] in names)
    ]


def peft_config(model, task_type, targets, s, base_dir: str, init_text: str):
    from peft import WaveFTConfig

    smallest = min(_linear_sizes(model, targets) or [s.waveft_n_frequency])
    return WaveFTConfig(
        n_frequency=min(s.waveft_n_frequency, smallest),
        task_type=task_type,
        target_modules=targets,
        random_loc_seed=s.seed,
    )


METHOD = Method("waveft", peft_config, fields=("waveft_n_frequency", "seed"))
