"""The GPU check script runs end to end on a CPU at a tiny size, so it cannot rot before a GPU is lent."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("timm")


@pytest.mark.slow
def test_gpu_check_runs_on_a_cpu_and_writes_its_table(fake_cifar, tmp_path):
    out = tmp_path / "check"
    command = [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--data-dir", str(fake_cifar), "--out", str(out)]
    command += [
        "--device",
        "cpu",
        "--amp",
        "bf16",
        "--budget",
        "4",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--batch-size",
        "8",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    rows = {(row["precision"], row["compile"]) for row in report["throughput"]}
    assert rows == {("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)}
    assert all(row["images_per_second"] > 0 for row in report["throughput"])
    assert report["ours_vs_timm"]["ratio"] > 0 and 0 <= report["cifar10_recipe"]["test_accuracy"] <= 1
    table = (out / "gpu_check.md").read_text()
    assert "| train step | bf16 | yes |" in table and "`cifar10` recipe, 4 s clock" in table
