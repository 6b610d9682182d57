"""The GPU check: every GPU figure the course still lacks, in one short run (issue 19).

    python tools/gpu_check.py --data-dir data/cifar10-jpeg.tar.gz --out runs/gpu_check
    bash tools/gpu_check.sh data/cifar10-jpeg.tar.gz runs/gpu_check        # the same, with a log

On a GPU machine with only the repository and a copy of the CIFAR-10 archive it takes about
``--budget`` seconds plus two minutes and writes ``gpu_check.json`` and ``gpu_check.md`` (one table)
to ``--out``:

1. training images/s of the ``cifar10`` recipe's model in fp32 and in the GPU's autocast dtype
   (bf16 from compute capability 8.0, fp16 + GradScaler below), one fixed batch;
2. the same with ``torch.compile`` (compile time excluded: the first steps are the warm-up);
3. our ViT against timm's ``VisionTransformer`` with the same configuration and weights (train-step ratio);
4. the ``cifar10`` recipe trained against a ``--budget``-second clock on the whole dataset: test accuracy.

On a CPU (``--device cpu``) it runs the same code at a tiny size; the test suite does so, so that the
script cannot rot before a GPU is available.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vit_lessons.bench import compare_throughput, training_throughput
from vit_lessons.settings import hardware_name, pick_device
from vit_lessons.train import build_model, get_config, resolve_precision, train


def _batch(config, device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.randn(batch_size, 3, 32, 32, device=device)  # (B, C, H, W)
    return images, torch.randint(0, 10, (batch_size,), device=device)


def throughput_rows(config, device, batch_size: int, steps: int, amp: str) -> list[dict]:
    """Training images/s: fp32, the AMP dtype, and each under torch.compile."""
    images, labels = _batch(config, device, batch_size)
    rows = []
    for precision in dict.fromkeys(("fp32", amp)):  # one row when the AMP dtype is fp32 (a CPU)
        for compiled in (False, True):
            torch.manual_seed(config.seed)
            model = build_model(config).to(device)
            model = torch.compile(model) if compiled else model
            rate = training_throughput(model, images, labels, steps=steps, precision=precision)
            rows.append(dict(measure="train step", precision=precision, compile=compiled, images_per_second=rate))
    return rows


def run(args) -> dict:
    device = torch.device(args.device) if args.device else pick_device()
    config = get_config(
        "cifar10", time_budget=args.budget, **({"batch_size": args.batch_size} if args.batch_size else {})
    )
    amp = args.amp or resolve_precision("auto", device).name
    start = time.perf_counter()
    report = dict(hardware=hardware_name(device), device=str(device), torch=torch.__version__, config=config.name)
    report["throughput"] = throughput_rows(config, device, config.batch_size, args.steps, amp)
    timm = compare_throughput(config, device, steps=args.steps, rounds=args.rounds, precision=amp)
    report["ours_vs_timm"] = {k: timm[k] for k in ("ours_images_per_second", "timm_images_per_second", "ratio")}
    summary = train(config, data_dir=args.data_dir, out=Path(args.out) / "cifar10_run", device=device,
                    precision=amp, progress=False, log=None)  # fmt: skip
    keys = ("test_accuracy", "wall_seconds", "epochs", "images_per_second", "precision", "params")
    report["cifar10_recipe"] = {key: summary[key] for key in keys} | {"time_budget": args.budget}
    report["check_seconds"] = time.perf_counter() - start
    return report


def markdown(report: dict) -> str:
    lines = [
        f"GPU check on {report['hardware']} ({report['device']}), torch {report['torch']}, "
        f"{report['check_seconds']:.0f} s in all",
        "",
        "| measure | precision | compile | value |",
        "|---|---|---|---|",
    ]
    for row in report["throughput"]:
        compiled = "yes" if row["compile"] else "no"
        lines.append(f"| train step | {row['precision']} | {compiled} | {row['images_per_second']:,.0f} images/s |")
    timm = report["ours_vs_timm"]
    rates = f"{timm['ours_images_per_second']:,.0f} vs {timm['timm_images_per_second']:,.0f} images/s"
    lines.append(f"| ours / timm train step | AMP | no | {timm['ratio']:.2f} ({rates}) |")
    run = report["cifar10_recipe"]
    result = f"{run['test_accuracy']:.1%} test accuracy, {run['epochs']} epochs, {run['wall_seconds']:.0f} s"
    lines.append(f"| `cifar10` recipe, {run['time_budget']:.0f} s clock | {run['precision']} | no | {result} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder or .tar.gz (default: VIT_LESSONS_DATA)")
    parser.add_argument("--out", default="runs/gpu_check", help="where gpu_check.json and gpu_check.md go")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the cifar10 recipe's run")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per throughput measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of ours vs timm")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (512)")
    parser.add_argument("--device", default=None, help="default: the best available")
    parser.add_argument("--amp", default=None, choices=["fp32", "bf16", "fp16"], help="default: the device's policy")
    args = parser.parse_args(argv)
    report = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
