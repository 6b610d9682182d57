"""The ten-minute race: CIFAR-10 models trained side by side on one machine (lesson 08).

Every contestant is trained by the same loop (:func:`vit_lessons.train.train`), the same data
pipeline and augmentation and the same wall clock; only the model differs. The shared recipe is
``cifar10-cpu``'s: AdamW (lr 2e-3, weight decay 0.05, none on norms, biases and tokens), batch 128,
warm-up then a cosine fitted to the clock, crops with 2 pixels of padding and flips, label smoothing
0.1, and the final accuracy on the whole test split with mirror-image averaging. A contestant that
is a recipe of its own (the plain ViT, the ResNet-9 teacher) is also raced with the shared recipe,
so that the table compares architectures, not tuning effort::

    python -m vit_lessons.race --data-dir ../shared/data/cifar10-jpeg.tar.gz --budget 600 --out runs/race
    python -m vit_lessons.race ... --contestants cifar10-cpu,cct_7_3x1 --seeds 1,2
    python -m vit_lessons.race ... --recipe cifar10-vit --precision bf16 \
        --contestants plain-vit,plain-vit+hard,plain-vit+soft --seeds 0,1,2   # lesson 10's study

Each run's folder is ``<out>/<contestant>-seed<k>``; ``race.json`` and ``race.md`` (a table with the
CPU model, the command and every contestant's accuracy, images/s and parameters) are rewritten
after each run, so an interrupted race keeps what it finished. CCT needs ``pip install vit-pytorch``,
the timm contestant ``pip install timm`` (both dev dependencies, not runtime ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .settings import hardware_name
from .train import TrainConfig, get_config, parse_overrides, train

__all__ = ["Contestant", "CONTESTANTS", "RACE", "race_config", "run_race", "format_race", "main"]


@dataclass(frozen=True)
class Contestant:
    """A model in the race: ``build(config)`` returns it, or None for the shared recipe's own model;
    ``teacher`` (a course checkpoint name) and ``distill`` ("hard"/"soft") train it with DeiT's loss."""

    description: str
    build: Callable[[TrainConfig], nn.Module] | None = None
    teacher: str | None = None
    distill: str = "none"
    alpha: float = 0.5  # the teacher term's weight (DeiT: 0.5 hard, 0.1 soft)


def _course(name: str, **kwargs) -> Callable[[TrainConfig], nn.Module]:
    def build(config: TrainConfig) -> nn.Module:
        from . import create_model

        return create_model(name, **kwargs)

    return build


def _cct(variant: str, conv_layers: int) -> Callable[[TrainConfig], nn.Module]:
    def build(config: TrainConfig) -> nn.Module:
        try:
            from vit_pytorch import cct
        except ImportError as error:
            raise ImportError("the CCT contestants come from vit-pytorch: pip install vit-pytorch") from error
        # Hassani et al.'s CIFAR settings: 3x3 convolutions, learned positions, sequence pooling.
        factory = getattr(cct, variant)
        return factory(
            img_size=32, n_conv_layers=conv_layers, kernel_size=3, num_classes=10, positional_embedding="learnable"
        )

    return build


def _resnet18(config: TrainConfig) -> nn.Module:
    from .cnn import resnet18_cifar

    return resnet18_cifar(10)


def _timm_vit(config: TrainConfig) -> nn.Module:
    from . import create_model
    from .bench import timm_twin

    return timm_twin(create_model("vit_cifar_small_patch4_32"))  # same configuration, timm's code


CONTESTANTS: dict[str, Contestant] = {
    "cifar10-cpu": Contestant("the course's hybrid ViT (6-conv stem, 2 blocks, avg pooling)"),
    "plain-vit": Contestant(
        "lesson 07's plain ViT, cifar10-vit's model (patch 4, 6x192, class token)", _course("vit_cifar_small_patch4_32")
    ),
    "timm-vit": Contestant("timm's VisionTransformer at the plain ViT's configuration", _timm_vit),
    "cct_2_3x2": Contestant("CCT-2/3x2, vit-pytorch (2 conv layers, 2 blocks of 128)", _cct("cct_2", 2)),
    "cct_7_3x1": Contestant("CCT-7/3x1, vit-pytorch (1 conv layer, 7 blocks of 256)", _cct("cct_7", 1)),
    "resnet18": Contestant("ResNet-18, torchvision with a CIFAR stem", _resnet18),
    "resnet9": Contestant("the course's compact ResNet-9 (cifar10_cnn's model)", _course("resnet9_cifar")),
    # lesson 10's study (run with --recipe cifar10-vit): the plain ViT taught by the ResNet-9 checkpoint
    "plain-vit+hard": Contestant(
        "the plain ViT, hard distillation from cifar10_cnn (DeiT)",
        _course("vit_cifar_small_patch4_32"),
        "cifar10_cnn",
        "hard",
    ),
    "plain-vit+soft": Contestant(
        "the plain ViT, soft distillation from cifar10_cnn (tau 3, lambda 0.1)",
        _course("vit_cifar_small_patch4_32"),
        "cifar10_cnn",
        "soft",
        0.1,
    ),
}


# the ten-minute race's contestants (the default); the others are lesson 10's distillation study
RACE = ["cifar10-cpu", "plain-vit", "timm-vit", "cct_2_3x2", "cct_7_3x1", "resnet18", "resnet9"]


def race_config(budget: float, seed: int, recipe: str = "cifar10-cpu", **overrides) -> TrainConfig:
    """The shared recipe (``cifar10-cpu`` unless ``recipe`` names another) on the clock ``budget``, for ``seed``."""
    return dataclasses.replace(get_config(recipe, **overrides), time_budget=budget, seed=seed)


def _entry(name: str, seed: int, summary: dict) -> dict:
    return {
        "contestant": name,
        "description": CONTESTANTS[name].description,
        "seed": seed,
        "test_accuracy": summary["test_accuracy"],
        "images_per_second": summary["images_per_second"],
        "params": summary["params"],
        "epochs": summary["epochs"],
        "wall_seconds": summary["wall_seconds"],
    }


def run_race(
    names,
    budget,
    seeds,
    out,
    data_dir=None,
    device=None,
    precision="fp32",
    command="",
    recipe="cifar10-cpu",
    **overrides,
) -> dict:
    """Train every contestant in ``names`` for every seed; returns (and keeps writing) the report."""
    unknown = [name for name in names if name not in CONTESTANTS]
    if unknown:
        raise ValueError(f"unknown contestant(s) {unknown}; choose from {sorted(CONTESTANTS)}")
    out = Path(out)
    report = {
        "hardware": hardware_name(device or "cpu"),
        "budget": budget,
        "recipe": recipe,
        "precision": precision,
        "command": command,
        "results": [],
    }
    if (out / "race.json").exists():  # an interrupted race: keep what it finished
        report["results"] = json.loads((out / "race.json").read_text())["results"]
    done = {(r["contestant"], r["seed"]) for r in report["results"]}
    for seed in seeds:
        for name in names:
            if (name, seed) in done:
                continue
            config = race_config(budget, seed, recipe, **overrides)
            contestant = CONTESTANTS[name]
            summary = train(
                config,
                out=out / f"{name}-seed{seed}",
                device=device,
                precision=precision,
                progress=False,
                log=None,
                model_factory=contestant.build,
                data_dir=data_dir,
                teacher=contestant.teacher,
                distill=contestant.distill,
                distill_alpha=contestant.alpha,
            )
            report["results"].append(_entry(name, seed, summary))
            out.mkdir(parents=True, exist_ok=True)
            (out / "race.json").write_text(json.dumps(report, indent=1))
            (out / "race.md").write_text(format_race(report))
    return report


def format_race(report: dict) -> str:
    """A markdown table, best mean accuracy first (mean ± std over seeds where there are several)."""
    rows: dict[str, list[dict]] = {}
    for result in report["results"]:
        rows.setdefault(result["contestant"], []).append(result)
    lines = [
        f"Race on {report['hardware']}, {report['budget']:.0f} s per run, recipe {report['recipe']}, "
        f"precision {report['precision']}.",
        f"Command: `{report['command']}`" if report["command"] else "",
        "",
        "| contestant | what it is | parameters | training images/s | epochs | test accuracy | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    order = sorted(rows, key=lambda name: -statistics.mean(r["test_accuracy"] for r in rows[name]))
    for name in order:
        runs = rows[name]
        accuracies = [100 * r["test_accuracy"] for r in runs]
        accuracy = f"{accuracies[0]:.1f}%"
        if len(runs) > 1:
            accuracy = f"{statistics.mean(accuracies):.1f} ± {statistics.stdev(accuracies):.1f}%"
        speed = statistics.mean(r["images_per_second"] for r in runs)
        epochs = "/".join(str(r["epochs"]) for r in runs)
        seeds = ",".join(str(r["seed"]) for r in runs)
        lines.append(
            f"| {name} | {runs[0]['description']} | {runs[0]['params']:,} | {speed:,.0f} | {epochs} | "
            f"{accuracy} | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m vit_lessons.race", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder or .tar.gz (default: VIT_LESSONS_DATA)")
    parser.add_argument("--budget", type=float, default=600.0, help="wall-clock seconds per run (default 600)")
    parser.add_argument("--contestants", default=",".join(RACE), help=f"comma-separated, of {', '.join(CONTESTANTS)}")
    parser.add_argument("--recipe", default="cifar10-cpu", help="the shared recipe (cifar10-vit for lesson 10's study)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default="runs/race")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of the shared recipe for every contestant (JSON value)",
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.contestants.split(",") if name.strip()]
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    try:
        overrides = parse_overrides(args.set, get_config(args.recipe))
    except ValueError as error:
        parser.error(str(error))
    command = "python -m vit_lessons.race " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    report = run_race(
        names,
        args.budget,
        seeds,
        args.out,
        args.data_dir,
        args.device,
        args.precision,
        command,
        args.recipe,
        **overrides,
    )
    print(format_race(report))
    return report


if __name__ == "__main__":
    main()
