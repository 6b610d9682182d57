"""``python -m vit_lessons.train``: the command line of :func:`~.run.train` (lesson 08, section 4).

One override channel: ``--set FIELD=VALUE`` (JSON values, dotted keys into ``model_kwargs``);
``--epochs``, ``--batch-size``, ``--lr`` and ``--time-budget`` are shorthands for it.
"""

from __future__ import annotations

import argparse

from ..data import DownloadError
from .config import CONFIGS, get_config, parse_overrides
from .distributed import Distributed
from .run import train

__all__ = ["main"]

# flag -> config field: sugar for --set FIELD=VALUE
_SHORTHANDS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "time_budget": "time_budget"}

USAGE = """examples:
  python -m vit_lessons.train --config digits                      # CPU, seconds
  python -m vit_lessons.train --config cifar10-cpu                 # a laptop CPU, a 10-minute clock
  python -m vit_lessons.train --config cifar10 --out runs/c10      # the GPU recipe
  python -m vit_lessons.train --config cifar10 --out runs/c10 --resume
  torchrun --nproc_per_node=4 -m vit_lessons.train --config cifar10
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vit_lessons.train",
        description="Training: one loop for a laptop CPU, a Colab T4, an H100, and several GPUs under torchrun.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--config", required=True, choices=sorted(CONFIGS), help="a training recipe")
    add("--data-dir", default=None, help="CIFAR-10 folder or .tar.gz (default: VIT_LESSONS_DATA)")
    add("--epochs", type=int, default=None, help="shorthand for --set epochs=N")
    add("--batch-size", type=int, default=None, help="global batch size (shorthand for --set batch_size=N)")
    add("--lr", type=float, default=None, help="shorthand for --set lr=X")
    add(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall-clock budget for the whole run; the cosine schedule is fitted to it (epochs become a cap)",
    )
    add(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field, VALUE in JSON (e.g. --set ema_decay=null --set tta_flip=true "
        "--set model_kwargs.depth=6); repeatable",
    )
    add("--out", default=None, help="output folder (default runs/<config>)")
    add("--resume", action="store_true", help="continue from <out>/last.pt")
    add("--compile", action="store_true", help="torch.compile the model")
    add("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    add("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    add("--stop-after", type=int, default=None, help="end this session after N epochs in total")
    add("--no-progress", action="store_true", help="no tqdm bars (logs)")
    add(
        "--teacher",
        default=None,
        metavar="CHECKPOINT_OR_NAME",
        help="distil from this teacher (lesson 10): a checkpoint like best.pt or a course checkpoint name",
    )
    add("--distill", default=None, choices=["hard", "soft"], help="distillation loss (default hard with --teacher)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.distill and not args.teacher:
        parser.error("--distill needs --teacher CHECKPOINT_OR_NAME")
    shorthands = {field: getattr(args, flag) for flag, field in _SHORTHANDS.items() if getattr(args, flag) is not None}
    try:
        overrides = parse_overrides(args.set, CONFIGS[args.config], shorthands)
    except ValueError as error:
        parser.error(str(error))
    config = get_config(args.config, **overrides)
    try:
        return train(
            config,
            data_dir=args.data_dir,
            out=args.out,
            resume=args.resume,
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            progress=not args.no_progress,
            stop_after=args.stop_after,
            teacher=args.teacher,
            distill=args.distill or ("hard" if args.teacher else "none"),
        )
    except (FileNotFoundError, DownloadError) as error:  # no CIFAR-10 and none downloaded: say what to do
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    finally:
        Distributed.teardown()
