"""vit_lessons.tome: token merging stands alone; vit_lessons.efficient builds on it, not the other way round."""

import subprocess
import sys

import torch

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


def test_token_merging_helpers_stay_on_the_models_device():
    # On a GPU the helpers must not create CPU tensors or read values back; the meta device (shapes
    # only, no data) fails on both, as a CUDA device would fail on the first.
    from vit_lessons import create_model
    from vit_lessons.tome import apply_token_merging, merged_image

    model = create_model("vit_digits_patch2_8", device="meta").eval()
    with apply_token_merging(model, r=0) as handle:
        model(torch.empty(2, 1, 8, 8, device="meta"))
        assert handle.size.device.type == "meta" and handle.size.shape == (1, 17, 1)
    image = torch.empty(3, 8, 8, device="meta")
    labels = torch.arange(16).reshape(4, 4) // 2  # (gh, gw) regions on the CPU, as patch_labels gives them
    assert merged_image(image, labels, patch_size=2).device.type == "meta"


def test_merged_image_paints_each_region_with_its_mean_colour():
    from vit_lessons.tome import merged_image

    image = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    labels = torch.tensor([[0, 0], [1, 2]])  # (gh, gw) with 2-pixel patches
    painted = merged_image(image, labels, patch_size=2)
    top = image[:, :2, :].mean(dim=(1, 2))  # region 0: the top two patches
    assert torch.allclose(painted[:, 0, 0], top) and torch.allclose(painted[:, 3, 3], image[:, 2:, 2:].mean(dim=(1, 2)))
