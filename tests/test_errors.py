"""Bad input gets a clear, early ValueError/TypeError that names the problem and the fix."""

import pytest
import torch

from vit_lessons import VisionTransformer, create_model
from vit_lessons.attention import MultiHeadSelfAttention, scaled_dot_product_attention
from vit_lessons.patches import PatchEmbedding, patchify
from vit_lessons.position import sinusoidal_position_encoding


@pytest.fixture(scope="module")
def cifar_model():
    return create_model("vit_cifar_patch4_32").eval()


def test_image_size_not_divisible_by_patch():
    with pytest.raises(ValueError, match=r"30x30 is not divisible by patch size 4.*img_size=28"):
        VisionTransformer(img_size=30, patch_size=4, embed_dim=32, depth=1, num_heads=4)
    with pytest.raises(ValueError, match="not divisible by patch size 4"):
        patchify(torch.randn(1, 3, 30, 30), 4)


def test_embed_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"embed dim 100 is not divisible by num_heads=8"):
        VisionTransformer(img_size=32, patch_size=4, embed_dim=100, depth=1, num_heads=8)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadSelfAttention(100, 8)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(img_size=0), "img_size must be positive"),
        (dict(patch_size=0), "patch_size must be positive"),
        (dict(embed_dim=-8), "embed_dim must be positive"),
        (dict(num_heads=0), "num_heads must be positive"),
        (dict(depth=-1), "depth must be a non-negative int"),
        (dict(in_chans=0), "in_chans must be positive"),
        (dict(mlp_ratio=0), "mlp_ratio must be positive"),
    ],
)
def test_non_positive_sizes(kwargs, pattern):
    config = dict(img_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=4)
    config.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        VisionTransformer(**config)


def test_wrong_channel_count(cifar_model):
    with pytest.raises(ValueError, match=r"1 channels but the model expects in_chans=3"):
        cifar_model(torch.randn(2, 1, 32, 32))


def test_missing_batch_dimension(cifar_model):
    with pytest.raises(ValueError, match=r"batch dimension is missing.*unsqueeze\(0\)"):
        cifar_model(torch.randn(3, 32, 32))


def test_channels_last_input(cifar_model):
    with pytest.raises(ValueError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        cifar_model(torch.randn(2, 32, 32, 3))


def test_wrong_resolution(cifar_model):
    with pytest.raises(ValueError, match=r"images are 64x64 but the model was built for 32x32.*img_size=64"):
        cifar_model(torch.randn(1, 3, 64, 64))


def test_integer_images(cifar_model):
    with pytest.raises(TypeError, match=r"torch.uint8.*images.float\(\) / 255"):
        cifar_model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_not_a_tensor(cifar_model):
    import numpy as np

    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        cifar_model(np.zeros((1, 3, 32, 32), dtype=np.float32))


def test_query_key_sizes_differ():
    with pytest.raises(ValueError, match=r"queries have 8 features but keys have 6"):
        scaled_dot_product_attention(torch.randn(2, 4, 8), torch.randn(2, 4, 6), torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="each key needs one value"):
        scaled_dot_product_attention(torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.randn(2, 5, 8))


def test_non_boolean_mask():
    q = torch.randn(1, 3, 4)
    with pytest.raises(TypeError, match=r"mask must be a boolean tensor.*mask.bool\(\)"):
        scaled_dot_product_attention(q, q, q, torch.ones(3, 3))


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown model 'vit_bse_patch16_224'.*Did you mean vit_base_patch16_224.*"
        r"Available models:.*vit_tiny_patch16_224",
    ):
        create_model("vit_bse_patch16_224")


def test_bad_options():
    with pytest.raises(ValueError, match="global_pool must be one of"):
        VisionTransformer(img_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=4, global_pool="max")
    with pytest.raises(ValueError, match="needs class_token=True"):
        VisionTransformer(img_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=4, class_token=False)
    with pytest.raises(TypeError, match="patch_size must be an int"):
        PatchEmbedding(32, 4.0, 3, 8)


def test_odd_dim_for_sinusoidal():
    with pytest.raises(ValueError, match="dim=7 must be a multiple of 2"):
        sinusoidal_position_encoding(10, 7)


def test_tokens_of_wrong_width_for_attention():
    with pytest.raises(ValueError, match=r"expected tokens of shape \(B, N, 32\)"):
        MultiHeadSelfAttention(32, 4)(torch.randn(2, 5, 16))
