"""Our Swin Transformer against timm's, its window functions, and the shifted-window mask."""

import pytest
import torch

import vit_lessons as vl
from vit_lessons.swin import (
    PatchMerging,
    SwinBlock,
    SwinTransformer,
    cyclic_shift,
    relative_position_index,
    shifted_window_mask,
    stage_resolutions,
    window_partition,
    window_reverse,
)

timm = pytest.importorskip("timm")
timm_swin = pytest.importorskip("timm.models.swin_transformer")

SWIN_NAMES = ["swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "swin_base_patch4_window7_224"]
PAPER_MILLIONS = dict(zip(SWIN_NAMES, [28, 50, 88]))  # Swin paper, Table 1: Swin-T 28M, Swin-S 50M, Swin-B 88M


@pytest.mark.parametrize("name", SWIN_NAMES)
def test_parameter_count_layout_and_strict_load_match_timm(name):
    with torch.device("meta"):
        reference = timm.create_model(name)
    ours = vl.create_model(name, device="meta")
    assert vl.count_parameters(ours) == sum(p.numel() for p in reference.parameters())
    assert round(vl.count_parameters(ours) / 1e6) == PAPER_MILLIONS[name]
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    timm_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours_shapes == timm_shapes
    ours.load_state_dict(reference.state_dict(), strict=True)


def _timm_and_ours(name=None, **config):
    torch.manual_seed(0)
    reference = timm.create_model(name or "swin_tiny_patch4_window7_224", **config).eval()
    ours = (vl.create_model(name, **config) if name else SwinTransformer(**config)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


@pytest.mark.slow
def test_swin_tiny_logits_match_timm_at_224():
    reference, ours = _timm_and_ours("swin_tiny_patch4_window7_224")
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference(images)
        torch.testing.assert_close(ours(images), expected, atol=1e-4, rtol=1e-4)
        # The same with the explicit attention path (weights computed, not fused).
        for module in ours.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
        torch.testing.assert_close(ours(images), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", SWIN_NAMES[1:])
def test_swin_small_and_base_logits_match_timm_at_224(name):
    reference, ours = _timm_and_ours(name)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


# The named models' hyper-parameters at reduced depth (fast), plus the course's CIFAR config.
PARITY_CONFIGS = [
    dict(patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24)),
    dict(
        img_size=32,
        patch_size=2,
        num_classes=10,
        window_size=4,
        embed_dim=48,
        depths=(2, 2, 2),
        num_heads=(3, 6, 12),
        mlp_ratio=2.0,
    ),
    dict(
        img_size=64,
        patch_size=4,
        num_classes=5,
        window_size=4,
        embed_dim=32,
        depths=(2, 2, 2, 2),
        num_heads=(2, 4, 8, 8),
        qkv_bias=False,
        in_chans=1,
    ),
    dict(img_size=48, patch_size=2, num_classes=0, window_size=3, embed_dim=24, depths=(2, 4), num_heads=(2, 4)),
]


@pytest.mark.parametrize("config", PARITY_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items())[:60])
def test_timm_state_dict_loads_strict_and_logits_match(config):
    reference, ours = _timm_and_ours(None, **config)
    size = config.get("img_size", 224)
    images = torch.randn(1 if size == 224 else 2, config.get("in_chans", 3), size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


def test_our_weights_load_into_timm_too():
    config = PARITY_CONFIGS[1]
    ours = SwinTransformer(**config).eval()
    reference = timm.create_model("swin_tiny_patch4_window7_224", **config).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


# -- the pieces ---------------------------------------------------------------------------------
def test_window_partition_matches_timm_and_reverses():
    feature_map = torch.randn(2, 12, 8, 5)
    windows = window_partition(feature_map, 4)
    assert windows.shape == (2 * 3 * 2, 4, 4, 5)
    torch.testing.assert_close(windows, timm_swin.window_partition(feature_map, (4, 4)))
    # Window 1 of image 0 is rows 0-3, columns 4-7; window 2 is rows 4-7, columns 0-3.
    torch.testing.assert_close(windows[1], feature_map[0, 0:4, 4:8])
    torch.testing.assert_close(windows[2], feature_map[0, 4:8, 0:4])
    torch.testing.assert_close(window_reverse(windows, 4, 12, 8), feature_map)


def test_relative_position_index_matches_definition_and_timm():
    for size in (2, 3, 7):
        index = relative_position_index(size)
        assert index.shape == (size * size, size * size)
        torch.testing.assert_close(index, timm_swin.get_relative_position_index(size, size))
        for i in range(size * size):
            for j in range(size * size):
                dy = i // size - j // size
                dx = i % size - j % size
                assert index[i, j] == (dy + size - 1) * (2 * size - 1) + (dx + size - 1)
        assert index.max() == (2 * size - 1) ** 2 - 1 and index.min() == 0


def test_shifted_window_mask_matches_timm():
    block = timm_swin.SwinTransformerBlock(dim=8, input_resolution=(8, 12), num_heads=2, window_size=4, shift_size=2)
    expected = block.attn_mask == 0  # timm: 0 = may attend, -100 = masked
    torch.testing.assert_close(shifted_window_mask(8, 12, 4, 2), expected)
    assert shifted_window_mask(8, 8, 4, 0).all()


def test_patch_merging_matches_timm():
    torch.manual_seed(0)
    reference = timm_swin.PatchMerging(dim=6)
    ours = PatchMerging(6)
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        for param in ours.norm.parameters():
            param.normal_()
    reference.load_state_dict(ours.state_dict())
    feature_map = torch.randn(2, 4, 6, 6)
    merged = ours(feature_map)
    assert merged.shape == (2, 2, 3, 12)
    torch.testing.assert_close(merged, reference(feature_map))


def test_stage_shapes_of_swin_tiny():
    stages = stage_resolutions(224, 4, 7, 4)
    assert [s["resolution"] for s in stages] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert stages[3]["shift"] == (0, 0)  # a 7×7 map is one 7×7 window: nothing to shift
    model = vl.create_model("swin_cifar_patch2_window4_32").eval()
    feature_map = model.patch_embed(torch.randn(2, 3, 32, 32))
    shapes = [tuple(feature_map.shape)]
    for stage in model.layers:
        feature_map = stage(feature_map)
        shapes.append(tuple(feature_map.shape))
    assert shapes == [(2, 16, 16, 48), (2, 16, 16, 48), (2, 8, 8, 96), (2, 4, 4, 192)]


# -- the mask must be right ---------------------------------------------------------------------
def _shifted_block(mask_on=True):
    torch.manual_seed(0)
    block = SwinBlock(dim=16, input_resolution=8, num_heads=2, window_size=4, shift_size=2).eval()
    if not mask_on:
        block.attn_mask = None
    return block


def test_shifted_attention_weights_are_zero_between_wrapped_tokens():
    """Tokens the cyclic shift brought together from opposite borders (their original rows or columns
    are ≥ M apart) get exactly zero attention weight; every true neighbour pair gets some."""
    block = _shifted_block()
    block.attn.fused_attn = False
    captured = {}
    block.attn.attn_drop.register_forward_hook(lambda module, args, out: captured.setdefault("weights", out))
    size, window, shift = 8, 4, 2
    with torch.no_grad():
        block(torch.randn(1, size, size, 16))
    weights = captured["weights"]  # (nW, h, M², M²)
    # Each token's original (row, col), carried through the shift and the partition as a marker.
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    origin = torch.stack([rows, cols], dim=-1)[None].float()  # (1, H, W, 2)
    origin_windows = window_partition(cyclic_shift(origin, shift), window).reshape(-1, window * window, 2)
    distance = (origin_windows[:, :, None, :] - origin_windows[:, None, :, :]).abs()  # (nW, M², M², 2)
    wrapped = (distance >= window).any(-1)  # (nW, M², M²): came from opposite borders
    assert wrapped.any() and not wrapped.all()
    assert (weights.permute(1, 0, 2, 3)[:, wrapped] == 0).all()
    assert (weights.permute(1, 0, 2, 3)[:, ~wrapped] > 0).all()


@pytest.mark.parametrize("fused", [True, False])
def test_changing_one_border_never_reaches_the_opposite_border(fused):
    """Rows 0-1 (top) share a shifted window with rows 6-7 (bottom): with the mask, rewriting the
    top rows leaves the bottom rows' output unchanged; without it, it does not."""
    images = torch.randn(1, 8, 8, 16)
    changed = images.clone()
    changed[:, :2] = torch.randn(1, 2, 8, 16) * 5  # top border: distinct marker values
    changed[:, :, :2] = torch.randn(1, 8, 2, 16) * 5  # and the left border
    for mask_on in (True, False):
        block = _shifted_block(mask_on)
        block.attn.fused_attn = fused
        with torch.no_grad():
            before, after = block(images), block(changed)
        bottom = (before[:, 6:, 2:] - after[:, 6:, 2:]).abs().max()
        right = (before[:, 2:, 6:] - after[:, 2:, 6:]).abs().max()
        if mask_on:
            assert bottom < 1e-6 and right < 1e-6
        else:
            assert bottom > 1e-2 and right > 1e-2  # the test can fail: without the mask, they mix


# -- training and errors ------------------------------------------------------------------------
def test_cifar_swin_trains_every_parameter():
    model = vl.create_model("swin_cifar_patch2_window4_32")
    logits = model(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bad_sizes_get_clear_errors():
    with pytest.raises(ValueError, match=r"multiple of patch × window.*img_size=224"):
        vl.create_model("swin_tiny_patch4_window7_224", img_size=225, device="meta")
    with pytest.raises(ValueError, match=r"use img_size=32"):
        SwinTransformer(img_size=30, patch_size=2, window_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 2))
    with pytest.raises(ValueError, match="not a whole number of 7x7 windows"):
        SwinTransformer(img_size=240, patch_size=4, window_size=7, embed_dim=16, depths=(2,), num_heads=(2,))
    model = vl.create_model("swin_cifar_patch2_window4_32")
    with pytest.raises(ValueError, match="built for 32x32"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="batch dimension is missing"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="multiples of the window size"):
        window_partition(torch.randn(1, 10, 8, 3), 4)
    with pytest.raises(ValueError, match="same length"):
        SwinTransformer(depths=(2, 2), num_heads=(3,))
    with pytest.raises(ValueError, match="shift .* must be in"):
        shifted_window_mask(8, 8, 4, 4)
    with pytest.raises(TypeError, match="boolean"):
        model.layers[0].blocks[1].attn(torch.randn(16, 16, 48), mask=torch.zeros(16, 16, 16))
