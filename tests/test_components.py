"""The building blocks against their definitions: patches vs Conv2d, sinusoids vs the formula,
attention vs torch's SDPA, blocks and position resampling."""

import math

import pytest
import torch
import torch.nn.functional as F

import vit_lessons as vl
from vit_lessons.attention import MultiHeadSelfAttention, scaled_dot_product_attention
from vit_lessons.blocks import DropPath, EncoderBlock
from vit_lessons.patches import PatchEmbedding, patchify, unpatchify
from vit_lessons.position import (
    resample_position_embedding,
    sinusoidal_position_encoding,
    sinusoidal_position_encoding_2d,
)


@pytest.mark.parametrize("channels,height,width,patch", [(3, 32, 32, 4), (1, 8, 8, 2), (3, 16, 24, 8), (2, 14, 14, 7)])
def test_patchify_equals_strided_conv(channels, height, width, patch):
    torch.manual_seed(0)
    images = torch.randn(2, channels, height, width)
    conv = torch.nn.Conv2d(channels, 5, kernel_size=patch, stride=patch)
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, N, D)
    actual = patchify(images, patch) @ conv.weight.flatten(1).T + conv.bias
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_patchify_order_is_row_major_then_channel_row_col():
    images = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    patches = patchify(images, 2)
    assert patches.shape == (1, 4, 8)
    # The second patch is the top-right 2×2 block: channel 0 rows 0-1 cols 2-3, then channel 1.
    assert patches[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]


def test_unpatchify_inverts_patchify():
    images = torch.randn(3, 3, 16, 24)
    torch.testing.assert_close(unpatchify(patchify(images, 8), 8, grid_size=(2, 3)), images)
    square = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(unpatchify(patchify(square, 2), 2), square)


def test_patch_embedding_is_patchify_then_linear():
    embed = PatchEmbedding(32, 4, 3, 16)
    images = torch.randn(2, 3, 32, 32)
    expected = patchify(images, 4) @ embed.proj.weight.flatten(1).T + embed.proj.bias
    torch.testing.assert_close(embed(images), expected, atol=1e-5, rtol=1e-5)
    assert embed.num_patches == 64 and embed.grid_size == (8, 8)


def test_sinusoidal_matches_formula():
    encoding = sinusoidal_position_encoding(50, 16)
    assert encoding.shape == (50, 16)
    for p in (0, 1, 7, 49):
        for i in range(8):
            angle = p / 10000 ** (2 * i / 16)
            assert encoding[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert encoding[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_2d_is_row_then_column_encoding():
    encoding = sinusoidal_position_encoding_2d(3, 5, 8)
    assert encoding.shape == (15, 8)
    rows, cols = sinusoidal_position_encoding(3, 4), sinusoidal_position_encoding(5, 4)
    for r in range(3):
        for c in range(5):
            torch.testing.assert_close(encoding[r * 5 + c], torch.cat([rows[r], cols[c]]))


def test_resample_equals_timm():
    timm_pos = pytest.importorskip("timm.layers")
    torch.manual_seed(0)
    pos_embed = torch.randn(1, 1 + 14 * 14, 32)
    for new_grid in [(24, 24), (2, 2), (7, 11)]:
        expected = timm_pos.resample_abs_pos_embed(pos_embed, list(new_grid), num_prefix_tokens=1)
        actual = resample_position_embedding(pos_embed, new_grid, num_prefix_tokens=1)
        torch.testing.assert_close(actual, expected)
    two_prefix = torch.randn(1, 2 + 64, 16)
    expected = timm_pos.resample_abs_pos_embed(two_prefix, [4, 4], num_prefix_tokens=2)
    torch.testing.assert_close(resample_position_embedding(two_prefix, 4, num_prefix_tokens=2), expected)


@pytest.mark.parametrize("use_mask", [False, True])
def test_attention_equals_torch_sdpa(use_mask):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 6)
    mask = None
    if use_mask:
        mask = torch.rand(5, 7) > 0.4
        mask[:, 0] = True  # every query may attend to something
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    if use_mask:
        assert (weights[..., ~mask] == 0).all()


def test_causal_mask_matches_is_causal():
    q = k = v = torch.randn(1, 2, 6, 4)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    out, _ = scaled_dot_product_attention(q, k, v, causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5, rtol=1e-5)


def test_multi_head_attention_matches_timm():
    timm = pytest.importorskip("timm")
    from timm.models.vision_transformer import Attention

    torch.manual_seed(0)
    reference = Attention(48, num_heads=6, qkv_bias=True).eval()
    ours = MultiHeadSelfAttention(48, 6).eval()
    ours.load_state_dict(reference.state_dict())
    tokens = torch.randn(2, 10, 48)
    torch.testing.assert_close(ours(tokens), reference(tokens), atol=1e-5, rtol=1e-5)
    assert timm is not None


def test_multi_head_attention_equals_nn_multihead_attention():
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(32, 4).eval()
    torch_mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(ours.qkv.weight)
        torch_mha.in_proj_bias.copy_(ours.qkv.bias)
        torch_mha.out_proj.weight.copy_(ours.proj.weight)
        torch_mha.out_proj.bias.copy_(ours.proj.bias)
    tokens = torch.randn(3, 9, 32)
    expected, _ = torch_mha(tokens, tokens, tokens, need_weights=False)
    torch.testing.assert_close(ours(tokens), expected, atol=1e-5, rtol=1e-5)


def test_encoder_block_matches_timm_block():
    pytest.importorskip("timm")
    from timm.models.vision_transformer import Block

    torch.manual_seed(0)
    reference = Block(64, 4, mlp_ratio=2.0, qkv_bias=True).eval()
    ours = EncoderBlock(64, 4, mlp_ratio=2.0).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    for p in ours.parameters():  # norms too, so a missing or misplaced LayerNorm shows
        torch.nn.init.normal_(p, std=0.2)
    reference.load_state_dict(ours.state_dict())
    tokens = torch.randn(2, 5, 64)
    torch.testing.assert_close(ours(tokens), reference(tokens), atol=1e-5, rtol=1e-5)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = DropPath(0.25)
    branch = torch.ones(4000, 3, 2)
    out = drop(branch)
    per_sample = out.reshape(4000, -1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    assert abs(out.mean().item() - 1.0) < 0.05
    drop.eval()
    assert torch.equal(drop(branch), branch)
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(1.0)


def test_quick_mode_flag(monkeypatch):
    monkeypatch.setenv("VIT_LESSONS_QUICK", "1")
    assert vl.is_quick()
    monkeypatch.setenv("VIT_LESSONS_QUICK", "0")
    assert not vl.is_quick()
    monkeypatch.delenv("VIT_LESSONS_QUICK")
    assert not vl.is_quick()


def test_fused_and_explicit_paths_agree_on_a_query_with_no_allowed_key():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(8, 2).eval()
    tokens = torch.randn(1, 3, 8)
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    with torch.no_grad():
        fused = attn(tokens, mask)
        attn.fused_attn = False
        explicit = attn(tokens, mask)
    torch.testing.assert_close(explicit, fused)
    _, weights = scaled_dot_product_attention(tokens, tokens, tokens, mask)
    assert (weights[0, 1] == 0).all() and torch.isfinite(weights).all()
