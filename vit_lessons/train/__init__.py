"""Training: one loop for a laptop CPU, a Colab T4, an H100, and several GPUs under ``torchrun``.

    python -m vit_lessons.train --config digits                      # CPU, seconds
    python -m vit_lessons.train --config cifar10-cpu                 # a laptop CPU, a 10-minute clock
    python -m vit_lessons.train --config cifar10 --out runs/c10      # the GPU recipe
    python -m vit_lessons.train --config cifar10 --out runs/c10 --resume
    torchrun --nproc_per_node=4 -m vit_lessons.train --config cifar10

What the loop does, and why:

- **AdamW** (decoupled weight decay; none on biases, norms, position embeddings and the class
  token), linear **warm-up then cosine** decay per step, **label smoothing**, **gradient clipping**,
  optional weight **EMA** and ``torch.compile``.
- **Mixed precision** (``--precision auto``): bf16 autocast on GPUs with compute capability ≥ 8
  (A100, L4, H100), fp16 autocast with ``torch.amp.GradScaler`` below (T4), fp32 on the CPU; the
  policy is :func:`vit_lessons.settings.autocast_dtype`. Logits are cast to fp32 before the
  softmax/cross-entropy. A non-finite loss or gradient skips the step with a warning; after
  ``max_bad_steps`` in a row training stops with an error instead of writing NaN weights.
- **Checkpoints** in ``--out``: ``last.pt`` each epoch (model, optimizer, scheduler, scaler, EMA,
  epoch, RNG states), written to a temporary file and renamed, so a crash mid-save never destroys
  the previous good one; ``best.pt``; ``metrics.csv``/``metrics.json``; ``summary.json``.
  ``--resume`` continues bit for bit on the CPU: the data order of each epoch depends only on
  (seed, epoch), and the RNG states come back from the checkpoint.
- **Distributed**: under ``torchrun`` each process trains on its shard with
  ``DistributedDataParallel`` (nccl on GPUs, gloo on CPUs); ``--batch-size`` stays the global batch;
  metrics are summed across ranks; only rank 0 prints and saves.


The package, one module per concern:

- ``config``: :class:`TrainConfig`, the named recipes :data:`CONFIGS`, overrides and validation.
- ``precision``: the mixed-precision policy. ``checkpoint``: atomic save/load, RNG state, the
  course's sha256-checked checkpoints. ``distributed``: what ``torchrun`` needs, in one object.
- ``course``: the shipped checkpoints: list, evaluate, export a run as one.
- ``trainer``: :class:`Trainer` (the one training step), parameter groups, schedules, evaluation.
- ``clock``: :class:`~.clock.TimeBudget`, the wall-clock budget. ``run``: :func:`train`, the loop.
  ``cli``: the command line.
"""

from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_course_checkpoint,
    save_checkpoint,
)
from .cli import main
from .config import CONFIGS, TrainConfig, get_config, parse_overrides
from .course import course_checkpoints, evaluate_course_checkpoint, export_course_checkpoint
from .precision import PrecisionPolicy, resolve_precision
from .run import build_data, build_model, train
from .trainer import Trainer, evaluate, predict

__all__ = [
    "TrainConfig",
    "CONFIGS",
    "get_config",
    "parse_overrides",
    "PrecisionPolicy",
    "resolve_precision",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "Trainer",
    "build_data",
    "build_model",
    "evaluate",
    "predict",
    "train",
    "load_course_checkpoint",
    "course_checkpoints",
    "evaluate_course_checkpoint",
    "export_course_checkpoint",
    "main",
]
