"""Our ViT against timm's: same state-dict keys and shapes, same logits, same parameter counts."""

import pytest
import torch
from torch import nn

import vit_lessons as vl
from vit_lessons import VisionTransformer, create_model

timm = pytest.importorskip("timm")

IMAGENET_NAMES = [
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch32_224",
    "vit_large_patch16_224",
    "vit_huge_patch14_224",
]


@pytest.mark.parametrize("name", IMAGENET_NAMES)
def test_parameter_count_and_layout_match_timm(name):
    with torch.device("meta"):
        reference = timm.create_model(name)
    ours = create_model(name, device="meta")
    assert vl.count_parameters(ours) == sum(p.numel() for p in reference.parameters())
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    timm_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours_shapes == timm_shapes


def test_vit_base_count_is_the_published_one():
    assert vl.count_parameters(create_model("vit_base_patch16_224", device="meta")) == 86_567_656


def test_meta_model_allocates_nothing():
    model = create_model("vit_huge_patch14_224", device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert vl.count_parameters(model) == 630_764_800


def test_seed_cifar_model_has_055m_not_25m_parameters():
    # The tutorial's model (img 32, patch 4, dim 128, depth 4, heads 8, MLP 256) claims ~2.5M.
    assert vl.count_parameters(create_model("vit_cifar_patch4_32")) == 546_186


PARITY_CONFIGS = [
    dict(img_size=32, patch_size=4, num_classes=10, embed_dim=64, depth=2, num_heads=4),
    dict(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=48, depth=3, num_heads=3, mlp_ratio=2.0),
    dict(img_size=48, patch_size=8, num_classes=7, embed_dim=96, depth=2, num_heads=6, qkv_bias=False),
    dict(img_size=32, patch_size=4, num_classes=10, embed_dim=64, depth=2, num_heads=2, global_pool="avg"),
    dict(img_size=32, patch_size=8, num_classes=0, embed_dim=32, depth=1, num_heads=2),
    dict(img_size=(32, 48), patch_size=8, num_classes=5, embed_dim=32, depth=2, num_heads=4),
    dict(
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2.0,
        global_pool="avg",
        class_token=False,
    ),
]


@pytest.mark.parametrize("config", PARITY_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items())[:60])
def test_timm_state_dict_loads_strict_and_logits_match(config):
    torch.manual_seed(0)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, **config).eval()
    ours = VisionTransformer(**config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    size = config["img_size"] if isinstance(config["img_size"], tuple) else (config["img_size"],) * 2
    images = torch.randn(3, config.get("in_chans", 3), *size)
    with torch.no_grad():
        expected = reference(images)
        actual = ours(images)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_vit_base_logits_match_timm():
    torch.manual_seed(0)
    reference = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    ours = create_model("vit_base_patch16_224").eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


def test_our_weights_load_into_timm_too():
    config = dict(img_size=32, patch_size=4, num_classes=10, embed_dim=64, depth=2, num_heads=4)
    ours = VisionTransformer(**config).eval()
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, **config).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


def test_explicit_and_fused_attention_paths_agree():
    model = create_model("vit_cifar_patch4_32").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = model(images)
        for block in model.blocks:
            block.attn.fused_attn = False
        explicit = model(images)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    model = create_model("vit_cifar_patch4_32")
    logits = model(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_init_is_truncated_normal_002():
    torch.manual_seed(0)
    model = create_model("vit_small_patch16_224")
    weights = torch.cat([b.attn.qkv.weight.flatten() for b in model.blocks])
    assert abs(weights.std().item() - 0.0176) < 0.002  # std of N(0, 0.02) truncated at ±2σ
    assert weights.abs().max().item() <= 0.04 + 1e-6
    assert model.pos_embed.abs().max().item() <= 0.04 + 1e-6
    assert all(b.attn.qkv.bias.abs().sum() == 0 for b in model.blocks)


def test_position_embedding_options():
    base = dict(img_size=32, patch_size=4, num_classes=10, embed_dim=64, depth=1, num_heads=4)
    sincos = VisionTransformer(**base, pos_embed="sincos")
    assert "pos_embed" not in sincos.state_dict()  # fixed buffer, not a weight
    assert sincos.pos_embed.shape == (1, 65, 64)
    torch.testing.assert_close(sincos.pos_embed[0, 1:], vl.sinusoidal_position_encoding_2d(8, 8, 64))
    none = VisionTransformer(**base, pos_embed="none")
    assert none.pos_embed is None
    # Without positions, permuting the patches does not change a class-token model's output.
    images = torch.randn(1, 3, 32, 32)
    patches = vl.patchify(images, 4)
    shuffled = vl.unpatchify(patches[:, torch.randperm(64)], 4)
    none.eval()
    with torch.no_grad():
        torch.testing.assert_close(none(images), none(shuffled), atol=1e-5, rtol=1e-5)
    learned = VisionTransformer(**base).eval()
    with torch.no_grad():
        assert not torch.allclose(learned(images), learned(shuffled), atol=1e-5)


def test_list_and_create_models():
    names = vl.list_models()
    for name in IMAGENET_NAMES + ["vit_cifar_patch4_32", "vit_digits_patch2_8"]:
        assert name in names
    model = create_model("vit_digits_patch2_8")
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert create_model("vit_cifar_patch4_32", num_classes=100).head.out_features == 100


def test_set_img_size_resamples_like_timm():
    config = dict(img_size=32, patch_size=4, num_classes=10, embed_dim=64, depth=2, num_heads=4)
    torch.manual_seed(0)
    ours = VisionTransformer(**config).eval()
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**config, "img_size": 48}).eval()
    state = ours.state_dict()
    state["pos_embed"] = timm.layers.resample_abs_pos_embed(state["pos_embed"], [12, 12], num_prefix_tokens=1)
    reference.load_state_dict(state)
    ours.set_img_size(48)
    assert ours.pos_embed.shape == (1, 145, 64)
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="not divisible by patch size 4"):
        ours.set_img_size(50)


def test_conv_stem_hybrid():
    model = VisionTransformer(img_size=32, num_classes=10, embed_dim=64, depth=2, num_heads=4, stem="conv")
    assert model.patch_embed.grid_size == (4, 4) and model.pos_embed.shape == (1, 17, 64)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    shallow = VisionTransformer(
        img_size=32, num_classes=10, embed_dim=64, depth=1, num_heads=4, stem="conv", stem_channels=(32, 64)
    )
    assert shallow.patch_embed.grid_size == (8, 8)
    with pytest.raises(ValueError, match="total stride 8"):
        VisionTransformer(img_size=36, embed_dim=64, depth=1, num_heads=4, stem="conv")


def test_conv_stem_with_stride_one_convolutions():
    model = VisionTransformer(
        img_size=32,
        num_classes=10,
        embed_dim=64,
        depth=1,
        num_heads=4,
        stem="conv",
        stem_channels=(32, 64, 64, 128),
        stem_strides=(2, 2, 1, 2),
    )
    assert model.patch_embed.grid_size == (4, 4) and model.patch_embed.patch_size == 8
    convs = [m for m in model.patch_embed.stem if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 1, 2] and [c.out_channels for c in convs] == [32, 64, 64, 128]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    for strides, message in (((2, 2), "a stride of 1 or 2 for each of the 4"), ((2, 2, 3, 2), "1 or 2")):
        with pytest.raises(ValueError, match=message):
            VisionTransformer(
                img_size=32,
                embed_dim=64,
                depth=1,
                num_heads=4,
                stem="conv",
                stem_channels=(32, 64, 64, 128),
                stem_strides=strides,
            )
