"""Benchmark: our ViT against timm's ``VisionTransformer`` built with the same configuration.

Taught in lesson 08 (``notebooks/08_training_cifar10.ipynb``).

    python -m vit_lessons.bench --config digits --json runs/bench.json
    python -m vit_lessons.bench --config cifar10 --epochs 60 --target 0.9     # on a GPU

Two measurements, both models in the same process and on the same data:

- **training throughput**: images/s of full training steps (forward, fp32 loss, backward, AdamW)
  under the run's precision policy; timed in alternating rounds (ours, timm, ours, ...) and the
  median round taken, so that load from other jobs hits both alike;
- **time to accuracy**: :func:`vit_lessons.train.train` run twice with the same recipe, seed and data
  order, once per model; the wall time at which each first reaches ``--target`` test accuracy.

timm starts from our initial weights (the state dicts have the same names and shapes), so the two
runs differ only in the code that computes them. A ratio ≥ 1.0 means ours is at least as fast.
timm is optional: without it the benchmark says how to install it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch import nn

from .settings import hardware_name, pick_device
from .timing import time_call
from .train import TrainConfig, Trainer, build_model, get_config, train

__all__ = ["timm_twin", "training_throughput", "compare_throughput", "compare_time_to_accuracy", "run", "main"]


def _require_timm():
    try:
        import timm  # noqa: F401
        from timm.models.vision_transformer import VisionTransformer
    except ImportError as error:
        raise ImportError("the benchmark compares against timm: pip install timm") from error
    return VisionTransformer


def timm_twin(model: nn.Module) -> nn.Module:
    """timm's ``VisionTransformer`` with the configuration and the current weights of our ``model``."""
    TimmViT = _require_timm()
    from .patches import ConvStemEmbedding

    embed = model.patch_embed
    kwargs = dict(
        img_size=embed.img_size,
        patch_size=embed.patch_size,
        in_chans=embed.in_chans,
        num_classes=model.num_classes,
        embed_dim=model.embed_dim,
        depth=len(model.blocks),
        num_heads=model.blocks[0].attn.num_heads,
        mlp_ratio=model.blocks[0].mlp.fc1.out_features / model.embed_dim,
        qkv_bias=model.blocks[0].attn.qkv.bias is not None,
        global_pool=model.global_pool,
        class_token=model.cls_token is not None,
        drop_path_rate=_max_drop_path(model),
        drop_rate=model.pos_drop.p,
    )
    if isinstance(embed, ConvStemEmbedding):
        channels = tuple(layer.out_channels for layer in embed.stem if isinstance(layer, nn.Conv2d))

        def conv_stem(img_size, patch_size, in_chans, embed_dim, **_):
            return ConvStemEmbedding(img_size, in_chans, embed_dim, channels)

        kwargs["embed_layer"] = conv_stem
    if model.pos_embed_type != "learn":
        raise ValueError(f"timm_twin supports learned position embeddings only, not {model.pos_embed_type!r}")
    twin = TimmViT(**kwargs)
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.to(next(model.parameters()).device)


def _max_drop_path(model: nn.Module) -> float:
    rates = [getattr(block.drop_path1, "drop_prob", 0.0) for block in model.blocks]
    return float(max(rates, default=0.0))


def training_throughput(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 10, precision: str = "auto"
) -> float:
    """Training images/s of :meth:`~vit_lessons.train.Trainer.step` on one fixed batch: the median of ``steps``
    timed steps after one warm-up step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    trainer = Trainer.for_model(model, optimizer, precision=precision)
    seconds = time_call(trainer.step, images, labels, repeats=steps, warmup=1, device=images.device)
    return len(images) / seconds


def compare_throughput(
    config: TrainConfig,
    device="cpu",
    batch_size: int | None = None,
    steps: int = 10,
    rounds: int = 5,
    precision: str = "auto",
) -> dict:
    """Median training images/s of ours and timm's twin, alternating rounds; ``ratio`` = ours / timm."""
    device = torch.device(device)
    torch.manual_seed(config.seed)
    ours = build_model(config).to(device)
    theirs = timm_twin(ours)
    channels, height, width = ours.patch_embed.in_chans, *ours.patch_embed.img_size
    batch_size = batch_size or config.batch_size
    images = torch.randn(batch_size, channels, height, width, device=device)
    labels = torch.randint(0, ours.num_classes, (batch_size,), device=device)
    rates = {"ours": [], "timm": []}
    for _ in range(rounds):
        rates["ours"].append(training_throughput(ours, images, labels, steps, precision))
        rates["timm"].append(training_throughput(theirs, images, labels, steps, precision))
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "ours_images_per_second": median["ours"],
        "timm_images_per_second": median["timm"],
        "ratio": median["ours"] / median["timm"],
        "batch_size": batch_size,
        "steps": steps,
        "rounds": rounds,
        "rounds_ours": rates["ours"],
        "rounds_timm": rates["timm"],
    }


def compare_time_to_accuracy(
    config: TrainConfig,
    target: float,
    device=None,
    precision="auto",
    data_dir=None,
    out: str | Path = "runs/bench",
    progress: bool = False,
) -> dict:
    """Train ``config`` with our model and with timm's twin; seconds to ``target`` test accuracy each."""
    results = {}
    for name in ("ours", "timm"):
        factory = build_model if name == "ours" else (lambda cfg: timm_twin(build_model(cfg)))
        summary = train(
            config,
            data_dir=data_dir,
            out=Path(out) / name,
            device=device,
            precision=precision,
            model_factory=factory,
            progress=progress,
            log=None,
        )
        reached = next((r for r in summary["history"] if r["test_accuracy"] >= target), None)
        results[name] = {
            "seconds_to_target": reached["wall_seconds"] if reached else None,
            "epochs_to_target": reached["epoch"] if reached else None,
            "cpu_seconds_to_target": reached["cpu_seconds"] if reached else None,
            "test_accuracy_per_epoch": [r["test_accuracy"] for r in summary["history"]],
            "final_test_accuracy": summary["test_accuracy"],
            "wall_seconds": summary["wall_seconds"],
            "images_per_second": summary["images_per_second"],
            "device": summary["device_name"],
            "precision": summary["precision"],
        }
    ours, theirs = results["ours"]["seconds_to_target"], results["timm"]["seconds_to_target"]
    results["ratio"] = theirs / ours if ours and theirs else None
    results["target"] = target
    return results


def run(
    config_name: str = "digits",
    epochs: int | None = None,
    target: float = 0.97,
    device=None,
    precision: str = "auto",
    data_dir=None,
    steps: int = 10,
    rounds: int = 5,
    skip_train: bool = False,
    out: str | Path = "runs/bench",
) -> dict:
    """Both benchmarks for one config; returns (and prints) the table's data."""
    config = get_config(config_name, **({"epochs": epochs} if epochs else {}))
    device = torch.device(device) if device else pick_device()
    report = {
        "config": config_name,
        "model": config.model,
        "model_kwargs": config.model_kwargs,
        "device": str(device),
        "torch": torch.__version__,
        "throughput": compare_throughput(config, device, steps=steps, rounds=rounds, precision=precision),
    }
    if not skip_train:
        report["time_to_accuracy"] = compare_time_to_accuracy(config, target, device, precision, data_dir, out)
    report["device_name"] = hardware_name(device)
    return report


def format_table(report: dict) -> str:
    rows = [("", "ours", "timm", "ours / timm")]
    t = report["throughput"]
    rows.append(
        (
            "training images/s",
            f"{t['ours_images_per_second']:,.0f}",
            f"{t['timm_images_per_second']:,.0f}",
            f"{t['ratio']:.2f}",
        )
    )
    if "time_to_accuracy" in report:
        a = report["time_to_accuracy"]

        def seconds(value):
            return f"{value:.1f} s" if value is not None else "not reached"

        rows.append(
            (
                f"time to {a['target']:.0%} test acc",
                seconds(a["ours"]["seconds_to_target"]),
                seconds(a["timm"]["seconds_to_target"]),
                f"{a['ratio']:.2f}" if a["ratio"] else "-",
            )
        )
        rows.append(
            (
                "  CPU time to it",
                seconds(a["ours"]["cpu_seconds_to_target"]),
                seconds(a["timm"]["cpu_seconds_to_target"]),
                "",
            )
        )
        rows.append(
            (
                "  epochs to it",
                str(a["ours"]["epochs_to_target"]),
                str(a["timm"]["epochs_to_target"]),
                "",
            )
        )
        rows.append(
            (
                "final test accuracy",
                f"{a['ours']['final_test_accuracy']:.2%}",
                f"{a['timm']['final_test_accuracy']:.2%}",
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    header = f"{report['config']} ({report['model']}) on {report['device_name']}"
    return "\n".join([header, lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m vit_lessons.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="digits", help="a vit_lessons.train config")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--target", type=float, default=0.97, help="test accuracy for time-to-accuracy")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=10, help="steps per throughput round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--json", default="runs/bench.json", help="where to save the results")
    args = parser.parse_args(argv)
    report = run(
        args.config,
        args.epochs,
        args.target,
        args.device,
        args.precision,
        args.data_dir,
        args.steps,
        args.rounds,
        args.throughput_only,
        out=Path(args.json).parent / "bench_runs",
    )
    print(format_table(report))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"saved {args.json}")
    return report


if __name__ == "__main__":
    main()
