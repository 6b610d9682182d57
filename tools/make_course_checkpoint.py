"""Turn a finished training run into a shipped course checkpoint (vit_lessons/assets/<name>.pt + .json).

    python tools/make_course_checkpoint.py runs/cifar10-vit cifar10_vit \
        --data-dir ../shared/data/cifar10-jpeg.tar.gz \
        --command "python -m vit_lessons.train --config cifar10-vit ..." \
        --extra '{"clock_scale": "..."}'

The record's test accuracy is measured again on the stored fp16 weights (the whole test split).
"""

from __future__ import annotations

import argparse
import json

from vit_lessons.train.course import export_course_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a finished run's --out folder (best.pt, last.pt, summary.json)")
    parser.add_argument("name", help="the checkpoint's name, e.g. cifar10_vit")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder or .tar.gz (default: VIT_LESSONS_DATA)")
    parser.add_argument("--extra", default="{}", help="more JSON fields for the record")
    args = parser.parse_args()
    record = export_course_checkpoint(
        args.run_dir, args.name, args.command, args.data_dir, extra=json.loads(args.extra)
    )
    print(json.dumps({k: record[k] for k in ("sha256", "params", "test_accuracy", "run_test_accuracy")}, indent=1))


if __name__ == "__main__":
    main()
