"""vit_lessons.tome: token merging stands alone; vit_lessons.efficient builds on it, not the other way round."""

import subprocess
import sys

import vit_lessons.efficient as efficient
import vit_lessons.tome as tome


def test_tome_does_not_import_the_benchmarks():
    # a fresh interpreter: in this one the test suite may already have imported efficient
    code = "import sys, vit_lessons.tome; print('vit_lessons.efficient' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_efficient_re_exports_every_tome_name():
    for name in tome.__all__:
        assert name in efficient.__all__
        assert getattr(efficient, name) is getattr(tome, name)
