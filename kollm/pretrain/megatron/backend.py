"""Pretraining on megatron-core: GPTModel, GPTDataset over the indexed data, TP/PP/CP/DP.

Every rank of a torchrun job calls `train`. The loop is Megatron-LM's, small:
- parallel state from the config (TP x PP x CP must divide the world; the rest is DP);
- data: `GPTDataset` (built through `BlendedMegatronDatasetBuilder`, index cached on
  disk by rank 0) over the `.bin/.idx`; step s trains on samples [s*G, (s+1)*G) of the
  shuffled sample index, so a resumed run sees exactly what an uninterrupted one would;
- megatron DDP (grad buffers, optional distributed optimizer) + Megatron's Adam;
- the schedule from `get_forward_backward_func` (1F1B when PP > 1);
- checkpoints: `dist_checkpointing` (sharded, resharding on load) written to
  `step_N.tmp` and renamed by rank 0 after every rank finished, with the same
  trainer_state.json (step + file sizes) as the torch backend, so a truncated one is skipped;
- the frame shared with the torch backend (ranks, LR schedule, checkpoint validity, SIGTERM/SIGUSR1
  -> checkpoint -> stop, metrics rows + TensorBoard, HF export): `kollm.pretrain.frame`.
"""

from __future__ import annotations

import os
import shutil
import time
from functools import partial

import torch

from kollm.core.errors import KollmError
from kollm.models.config import ModelConfig
from kollm.pretrain import mfu
from kollm.pretrain.config import PretrainConfig
from kollm.pretrain.frame import (
    Distributed,
    MetricsLog,
    StopSignals,
    checkpoint_due,
    checkpoint_path,
    checkpoint_step,
    commit_checkpoint,
    latest_checkpoint,
    lr_at,
)


class _TokenizerInfo:
    """What GPTDataset asks of a tokenizer: the EOD id and the vocab size."""

    def __init__(self, tokenizer):
        self.eod = tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else -1
        # part of the dataset's cache key: a different tokenizer must not reuse a cached index
        self.unique_identifiers = {
            "class": "kollm",
            "eod": self.eod,
            "vocab_size": self.vocab_size,
            "name": getattr(tokenizer, "name_or_path", ""),
        }


def initialize(p: PretrainConfig) -> Distributed:
    from megatron.core import parallel_state, tensor_parallel

    dist = Distributed()
    if not torch.distributed.is_initialized():  # one process: megatron still wants a process group
        torch.distributed.init_process_group(
            "nccl" if dist.device.type == "cuda" else "gloo", store=torch.distributed.HashStore(), rank=0, world_size=1
        )
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=p.tensor_parallel,
            pipeline_model_parallel_size=p.pipeline_parallel,
            context_parallel_size=p.context_parallel,
        )
    tensor_parallel.model_parallel_cuda_manual_seed(p.seed)
    return dist


def build_dataset(prefix: str, tokenizer, p: PretrainConfig, num_samples: int, cache_dir: str):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    config = GPTDatasetConfig(
        random_seed=p.seed,
        sequence_length=p.seq_len,
        blend=([prefix], None),
        split="100,0,0",
        tokenizer=_TokenizerInfo(tokenizer),
        path_to_cache=cache_dir,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [num_samples, 0, 0], lambda: True, config).build()
    return train


def _loss_func(loss_mask: torch.Tensor, output_tensor: torch.Tensor):
    losses = output_tensor.float().view(-1)
    mask = loss_mask.view(-1).float()
    loss = torch.sum(losses * mask) / mask.sum()
    # clone: the schedule divides the returned loss in place by the number of micro-batches
    return loss, {"lm loss": loss.detach().clone()}


def _forward_step(data_iterator, model):
    batch = next(data_iterator)
    output = model(batch["tokens"], batch["position_ids"], attention_mask=None, labels=batch["labels"])
    return output, partial(_loss_func, batch["loss_mask"])


def _micro_batches(dataset, step: int, p: PretrainConfig, dp_rank: int, dp_size: int, device):
    """This DP rank's micro-batches of global step `step` (samples in a fixed order)."""
    per_rank = p.batch_size // dp_size
    mbs = p.micro_batch_size or per_rank
    first = step * p.batch_size + dp_rank * per_rank
    for start in range(first, first + per_rank, mbs):
        samples = [dataset[i] for i in range(start, start + mbs)]
        yield {
            k: torch.stack([torch.as_tensor(s[k]) for s in samples]).to(device)
            for k in ("tokens", "labels", "loss_mask", "position_ids")
        }


# The distributed optimizer's checkpoint layout, as Megatron-LM's default: each rank writes its own
# shard of the optimizer state (no gather), and a resume may change the data-parallel size (more or
# fewer nodes). megatron-core's own default ('fully_sharded_model_space') is deprecated and fails
# at the first save ("ShardedTensor.flattened_range is not supported"). Ignored without it.
OPTIMIZER_SHARDING = {"distrib_optim_sharding_type": "dp_reshardable"}


def _sharded_state(model, optimizer=None, is_loading: bool = False) -> dict:
    # the bare GPTModel's keys (no DDP "module." prefix; Float16Module passes its module's through):
    # what a one-process export builds
    state = {"model": getattr(model, "module", model).sharded_state_dict()}
    if optimizer is not None:
        # is_loading: create the Adam moments first, so there is somewhere to load them into
        state["optimizer"] = optimizer.sharded_state_dict(
            state["model"], is_loading=is_loading, metadata=OPTIMIZER_SHARDING
        )
    return state


def save(ckpt_root: str, step: int, model, optimizer, dist: Distributed) -> str:
    from megatron.core import dist_checkpointing

    final = checkpoint_path(ckpt_root, step)
    tmp = final + ".tmp"
    if dist.main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    dist.barrier()
    dist_checkpointing.save(_sharded_state(model, optimizer), tmp)
    dist.barrier()  # every rank's shards are on disk before the rename
    if dist.main:
        commit_checkpoint(tmp, final, {"step": step, "format": "megatron dist_checkpointing"})
    dist.barrier()
    return final


def load(path: str, model, optimizer) -> int:
    from megatron.core import dist_checkpointing

    state = dist_checkpointing.load(_sharded_state(model, optimizer, is_loading=True), path)
    with torch.no_grad():  # the distributed optimizer copies into views of the parameters
        getattr(model, "module", model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    return checkpoint_step(path)


def train(
    model_cfg: ModelConfig, p: PretrainConfig, prefixes: dict, tokenizer, out_dir: str, flops_per_token: float
) -> dict:
    # first: a signal during set-up stops the run after its first step, not mid-write
    with StopSignals() as stop:
        return _train(stop, model_cfg, p, prefixes, tokenizer, out_dir, flops_per_token)


def _train(
    stop: StopSignals,
    model_cfg: ModelConfig,
    p: PretrainConfig,
    prefixes: dict,
    tokenizer,
    out_dir: str,
    flops_per_token: float,
) -> dict:
    from megatron.core import parallel_state
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from kollm.pretrain.megatron import gpt_model as mmodel

    if p.threads:
        torch.set_num_threads(p.threads)
    dist = initialize(p)
    on_gpu = dist.device.type == "cuda"
    dp_size = parallel_state.get_data_parallel_world_size()
    dp_rank = parallel_state.get_data_parallel_rank()
    gpt = mmodel.build(
        model_cfg,
        p,
        len(tokenizer),
        on_gpu,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
    )
    gpt.to(dist.device)
    if gpt.config.bf16:
        # as Megatron's own training does: every parameter in bf16 (megatron's torch RMSNorm is made in
        # fp32 whatever params_dtype says, and the mixed-precision optimizer can only checkpoint bf16
        # parameters: "Param id 9 does not match any model sharded param"), outputs back in fp32
        from megatron.core.transformer.module import Float16Module

        gpt = Float16Module(gpt.config, gpt)
    config = gpt.config
    model = DistributedDataParallel(
        config,
        DistributedDataParallelConfig(
            grad_reduce_in_fp32=True, overlap_grad_reduce=False, use_distributed_optimizer=p.distributed_optimizer
        ),
        module=gpt,
    )
    optimizer = get_megatron_optimizer(
        OptimizerConfig(
            optimizer="adam",
            lr=p.lr,
            min_lr=p.lr * p.min_lr_ratio,
            weight_decay=p.weight_decay,
            adam_beta1=0.9,
            adam_beta2=0.95,
            bf16=config.bf16,
            params_dtype=config.params_dtype,
            clip_grad=p.grad_clip,
            use_distributed_optimizer=p.distributed_optimizer,
        ),
        [model],
    )
    config.finalize_model_grads_func = finalize_model_grads
    config.no_sync_func = model.no_sync
    config.grad_scale_func = optimizer.scale_loss

    ckpt_root = os.path.join(out_dir, "checkpoints")
    step = 0
    resumed_from = latest_checkpoint(ckpt_root, warn=dist.warn)
    checkpoint = resumed_from
    if resumed_from:
        step = load(resumed_from, model, optimizer)
    log = MetricsLog(out_dir, dist, resumed_from, step)
    dataset = build_dataset(
        prefixes["train"], tokenizer, p, p.steps * p.batch_size, os.path.join(out_dir, "data", "cache")
    )
    forward_backward = get_forward_backward_func()
    per_rank = p.batch_size // dp_size
    mbs = p.micro_batch_size or per_rank
    if p.batch_size % dp_size or per_rank % mbs:  # megatron's schedule runs equal micro-batches: none may be cut
        raise KollmError(
            f"pretrain.batch_size={p.batch_size} does not split into {dp_size} data-parallel ranks of whole "
            f"micro-batches of {mbs} rows"
        )
    peak, peak_source = mfu.peak_flops(p.precision, dist.device.type)
    tokens_per_step = p.batch_size * p.seq_len
    t_last, tok_since = time.perf_counter(), 0
    model.train()
    while step < p.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, p)
        model.zero_grad_buffer()
        optimizer.zero_grad()
        losses = forward_backward(
            forward_step_func=_forward_step,
            data_iterator=_micro_batches(dataset, step, p, dp_rank, dp_size, dist.device),
            model=model,
            num_microbatches=per_rank // mbs,
            seq_length=p.seq_len,
            micro_batch_size=mbs,
            decoder_seq_length=p.seq_len,
            forward_only=False,
        )
        _, grad_norm, _ = optimizer.step()
        step += 1
        tok_since += tokens_per_step
        if step % p.log_every == 0 or step == p.steps:
            tps = tok_since / (time.perf_counter() - t_last)
            row = MetricsLog.row(
                step,
                _mean_loss(losses, dp_size, dist),
                lr_at(step - 1, p),
                grad_norm or 0.0,
                tps,
                flops_per_token,
                peak,
                dist.world,
                step * tokens_per_step,
                mfu.peak_memory_mb(dist.device.type),
            )
            log.write(row)
            if dist.main:
                print(
                    f"step {step}/{p.steps} loss {row['loss']:.4f} tokens/s {tps:,.0f} mfu {row['mfu']:.3f}", flush=True
                )
            t_last, tok_since = time.perf_counter(), 0
        stopping = stop.requested(dist)
        if checkpoint_due(step, p, stopping):
            checkpoint = save(ckpt_root, step, model, optimizer, dist)
        if stopping:
            StopSignals.announce(dist, step)
            break
    return {
        "steps": step,
        "resumed_from": resumed_from,
        "history": log.close(),
        "checkpoint": checkpoint,
        "stopped_early": step < p.steps,
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "world_size": dist.world,
    }


def _mean_loss(losses: list[dict], dp_size: int, dist: Distributed) -> float:
    """The step's loss, averaged over data-parallel ranks on the last pipeline stage (where it lives) and
    broadcast along the pipeline, so every rank logs the same number."""
    from megatron.core import parallel_state

    local = torch.tensor(
        [sum(step["lm loss"].item() for step in losses) / len(losses) if losses else 0.0],
        dtype=torch.float64,
        device=dist.device,
    )
    torch.distributed.all_reduce(local, group=parallel_state.get_data_parallel_group())
    local /= dp_size
    if parallel_state.get_pipeline_model_parallel_world_size() > 1:
        torch.distributed.broadcast(
            local,
            src=parallel_state.get_pipeline_model_parallel_last_rank(),
            group=parallel_state.get_pipeline_model_parallel_group(),
        )
    return local.item()


def teardown() -> None:
    """Leave megatron's parallel state and the process group (before a one-process export)."""
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def to_hf(checkpoint: str, model_cfg: ModelConfig, tokenizer):
    """The distributed checkpoint resharded into one process, converted to HF and checked by logits."""
    from kollm.pretrain.megatron.to_hf import export_hf

    return export_hf(checkpoint, model_cfg, tokenizer)
