"""Training images/s of ``cifar10-cpu`` variants with ``Trainer.step`` on real CIFAR-10 batches.

The throughput half of the ablation in docs/benchmarks/cifar10-cpu.md (accuracy needs full runs):

    python tools/cifar10_cpu_throughput.py --data-dir ../shared/data/cifar10-jpeg.tar.gz \\
        '{"base": {}, "sdpa": {"fused_attn": true}, "nchw": {"channels_last": false}}'

Each variant is a dict of ``TrainConfig`` overrides on top of ``cifar10-cpu``; ``--compile`` wraps the
model in ``torch.compile`` (the first steps then include the compilation). Run variants more than
once and in different orders: a virtual machine's speed drifts by several percent over minutes.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vit_lessons.train import Trainer, build_data, build_model, get_config, resolve_precision


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants", help="JSON: {name: {field: value}}")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured time per variant")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for name, overrides in json.loads(args.variants).items():
        config = get_config("cifar10-cpu", **overrides)
        loader, _, _, _ = build_data(config, args.data_dir, "cpu")
        torch.manual_seed(0)
        start = time.perf_counter()
        trainer = Trainer(
            build_model(config), config, resolve_precision("fp32", "cpu"), "cpu", len(loader), compile=args.compile
        )
        batches = iter(loader)
        for _ in range(3):
            trainer.step(*next(batches))
        warm_up = time.perf_counter() - start
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            trainer.step(*next(batches))
            steps += 1
        rate = steps * config.batch_size / (time.perf_counter() - start)
        results[name] = rate
        print(
            f"{name}: {rate:,.0f} training images/s (set-up + 3 steps {warm_up:.1f} s), "
            f"{torch.get_num_threads()} threads, compile={args.compile}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
