"""Attention maps, rollout and gradient rollout against explicit computations written here."""

import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vit_lessons as vl
from vit_lessons.attention import MultiHeadSelfAttention
from vit_lessons.blocks import EncoderBlock
from vit_lessons.interpret import (
    attention_distance,
    attention_maps,
    attention_rollout,
    capture_attention,
    gradient_rollout,
    gradient_rollout_from,
    token_heatmap,
)
from vit_lessons.patches import PatchEmbedding

pytestmark = pytest.mark.usefixtures("one_thread")


def peaky(model: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Randomise every parameter (norms included) so attention is far from uniform."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * scale
            param.copy_(1.0 + 0.2 * noise if name.endswith("norm1.weight") or name.endswith("norm2.weight") else noise)
    return model.eval()


@pytest.fixture
def cifar_model():
    torch.manual_seed(0)
    return peaky(vl.create_model("vit_cifar_patch4_32"))


def explicit_maps(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """softmax(Q Kᵀ / sqrt(d)) recomputed from each attention module's input and its qkv weights."""
    modules = [m for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]
    inputs = []
    handles = [m.register_forward_pre_hook(lambda mod, args: inputs.append(args[0].detach())) for m in modules]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    maps = []
    for module, tokens in zip(modules, inputs):
        heads = module.num_heads
        B, N, D = tokens.shape
        d = D // heads
        weight, bias = module.qkv.weight.detach(), module.qkv.bias.detach()
        q = tokens @ weight[:D].T + bias[:D]  # (B, N, D)
        k = tokens @ weight[D : 2 * D].T + bias[D : 2 * D]
        q = q.reshape(B, N, heads, d)
        k = k.reshape(B, N, heads, d)
        scores = torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double()) / math.sqrt(d)
        maps.append(torch.softmax(scores, dim=-1).float())
    return maps


def fused_flags(model):
    return [m.fused_attn for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]


# -- raw maps ----------------------------------------------------------------------------------------


def test_captured_maps_equal_explicit_softmax_qk(cifar_model):
    images = torch.randn(3, 3, 32, 32)
    assert all(fused_flags(cifar_model)), "the model must start on its SDPA path"
    maps = attention_maps(cifar_model, images)
    expected = explicit_maps(cifar_model, images)
    assert len(maps) == len(expected) == 4
    for layer, (actual, reference) in enumerate(zip(maps, expected)):
        assert actual.shape == (3, 8, 65, 65)
        torch.testing.assert_close(actual, reference, atol=1e-4, rtol=0, msg=lambda m, i=layer: f"layer {i}: {m}")
        # Not a trivial (uniform) case: the test could tell a wrong map from a right one.
        assert reference.amax() > 5.0 / 65
    assert all(fused_flags(cifar_model)), "SDPA must be back on after capturing"


def test_model_uses_sdpa_before_and_after_capture(cifar_model, monkeypatch):
    calls = []
    original = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        cifar_model(images)
    assert len(calls) == 4
    attention_maps(cifar_model, images)
    assert len(calls) == 4, "the capture itself must use the explicit path"
    with torch.no_grad():
        cifar_model(images)
    assert len(calls) == 8, "after capturing, normal calls must use SDPA again"


def test_model_outputs_unchanged_by_capture(cifar_model):
    images = torch.randn(2, 3, 32, 32)
    state_before = {k: v.clone() for k, v in cifar_model.state_dict().items()}
    with torch.no_grad():
        logits_before = cifar_model(images)
    maps, logits_during = attention_maps(cifar_model, images, return_logits=True)
    relevance, logits_grad = gradient_rollout(cifar_model, images, target_class=3, return_logits=True)
    with torch.no_grad():
        logits_after = cifar_model(images)
    assert torch.equal(logits_before, logits_after)
    torch.testing.assert_close(logits_during, logits_before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits_grad, logits_before, atol=1e-5, rtol=1e-5)
    for key, value in cifar_model.state_dict().items():
        assert torch.equal(value, state_before[key]), key
    assert all(p.grad is None for p in cifar_model.parameters()), "gradient rollout must not leave .grad on parameters"
    for module in cifar_model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, f"hook left on {type(module).__name__}"
    assert not cifar_model.training


def test_capture_restores_flags_and_hooks_after_an_error(cifar_model):
    cifar_model.blocks[1].attn.fused_attn = False  # a user's own choice is restored too
    with pytest.raises(ValueError), capture_attention(cifar_model) as captured:
        cifar_model(torch.randn(1, 3, 32, 32))
        raise ValueError("boom")
    assert fused_flags(cifar_model) == [True, False, True, True]
    assert all(len(per_layer) == 1 for per_layer in captured)
    assert not any(m._forward_hooks for m in cifar_model.modules())


def test_plain_hook_captures_nothing_on_the_fused_path(cifar_model):
    """The public pitfall (jacobgil/vit-explain#23): attn_drop never sees weights under SDPA."""
    seen = []
    handle = cifar_model.blocks[0].attn.attn_drop.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        cifar_model(torch.randn(1, 3, 32, 32))
    handle.remove()
    assert seen == []


def test_capture_keeps_graph_only_when_asked(cifar_model):
    images = torch.randn(1, 3, 32, 32, requires_grad=True)
    with capture_attention(cifar_model) as detached:
        cifar_model(images)
    with capture_attention(cifar_model, keep_graph=True) as kept:
        cifar_model(images)
    assert not detached[0][0].requires_grad
    assert kept[0][0].requires_grad


@pytest.mark.slow
def test_vit_base_224_under_no_grad_holds_no_graph():
    torch.manual_seed(0)
    model = vl.create_model("vit_base_patch16_224", device="meta").to_empty(device="cpu").eval()
    with torch.no_grad():  # timm's truncated-normal init of 86M weights is slow; any weights will do
        for param in model.parameters():
            param.normal_(0, 0.02)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        maps = attention_maps(model, images)
    assert len(maps) == 12
    assert all(m.shape == (1, 12, 197, 197) for m in maps)
    assert not any(m.requires_grad or m.grad_fn is not None for m in maps)
    torch.testing.assert_close(maps[-1].sum(-1), torch.ones(1, 12, 197))


class TwoPrefixViT(nn.Module):
    """A DeiT-shaped model (class + distillation token) built here from vit_lessons blocks."""

    def __init__(self):
        super().__init__()
        self.num_prefix_tokens = 2
        self.patch_embed = PatchEmbedding(16, 4, 3, 32)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 32))
        self.dist_token = nn.Parameter(torch.randn(1, 1, 32))
        self.pos_embed = nn.Parameter(torch.randn(1, 2 + 16, 32))
        self.blocks = nn.Sequential(*[EncoderBlock(32, 4) for _ in range(3)])
        self.head = nn.Linear(32, 5)

    def forward(self, images):
        tokens = self.patch_embed(images)  # (B, 16, D)
        prefix = torch.cat([self.cls_token, self.dist_token], dim=1).expand(tokens.shape[0], -1, -1)
        tokens = self.blocks(torch.cat([prefix, tokens], dim=1) + self.pos_embed)
        return self.head((tokens[:, 0] + tokens[:, 1]) / 2)


def test_two_prefix_tokens_maps_rollout_and_heatmap():
    torch.manual_seed(0)
    model = peaky(TwoPrefixViT())
    images = torch.randn(2, 3, 16, 16)
    maps = attention_maps(model, images)
    for actual, reference in zip(maps, explicit_maps(model, images)):
        assert actual.shape == (2, 4, 18, 18)
        torch.testing.assert_close(actual, reference, atol=1e-4, rtol=0)
    relevance = gradient_rollout(model, images, target_class=1)
    assert relevance.shape == (2, 18, 18)
    heat = token_heatmap(attention_rollout(maps)[:, 0], model.patch_embed.grid_size, model.num_prefix_tokens)
    assert heat.shape == (2, 4, 4)


def test_deit_from_the_package_when_present():
    try:
        importlib.import_module("vit_lessons.deit")
    except ModuleNotFoundError:
        pytest.skip("vit_lessons.deit is not written yet")
    names = [n for n in vl.list_models() if n.startswith("deit")]
    if not names:
        pytest.skip("no DeiT model registered")
    torch.manual_seed(0)
    name = min(names, key=lambda n: vl.count_parameters(vl.create_model(n, device="meta")))
    model = vl.create_model(name).eval()
    assert model.num_prefix_tokens == 2
    size = model.patch_embed.img_size
    images = torch.randn(1, 3, *size)
    maps = attention_maps(model, images)
    rows, cols = model.patch_embed.grid_size
    assert maps[0].shape[-1] == 2 + rows * cols
    for actual, reference in zip(maps, explicit_maps(model, images)):
        torch.testing.assert_close(actual, reference, atol=1e-4, rtol=0)


# -- rollout -----------------------------------------------------------------------------------------


def random_maps(layers=4, batch=2, heads=3, tokens=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.softmax(3 * torch.randn(batch, heads, tokens, tokens, generator=generator), -1) for _ in range(layers)
    ]


def numpy_rollout(maps, fusion="mean", discard_ratio=0.0):
    arrays = [m.double().numpy() for m in maps]
    batch, tokens = arrays[0].shape[0], arrays[0].shape[-1]
    out = []
    for b in range(batch):
        result = np.eye(tokens)
        for layer in arrays:
            fused = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](layer[b], axis=0)
            if discard_ratio:
                count = int(discard_ratio * tokens * tokens)
                order = np.argsort(fused, axis=None)[:count]
                flat = fused.flatten()
                for index in order:
                    if index // tokens != index % tokens:
                        flat[index] = 0.0
                fused = flat.reshape(tokens, tokens)
            a_hat = 0.5 * fused + 0.5 * np.eye(tokens)
            a_hat = a_hat / a_hat.sum(axis=1, keepdims=True)
            result = a_hat @ result  # R = Â_L ... Â_1
        out.append(result)
    return np.stack(out)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_matches_the_formula(fusion):
    maps = random_maps()
    actual = attention_rollout(maps, head_fusion=fusion)
    np.testing.assert_allclose(actual.numpy(), numpy_rollout(maps, fusion), atol=1e-5)
    torch.testing.assert_close(actual.sum(-1), torch.ones(2, 7))


def test_rollout_order_and_identity_matter():
    maps = random_maps(layers=3)
    actual = attention_rollout(maps).numpy()
    reversed_order = numpy_rollout(maps[::-1])  # the vit-explain#6 mistake: layers in the wrong order
    assert np.abs(actual - reversed_order).max() > 1e-3
    no_identity = attention_rollout([m * 0 + m for m in maps]).numpy()
    fused = [m.mean(1).double().numpy() for m in maps]
    product = fused[2][0] @ fused[1][0] @ fused[0][0]  # rollout without the residual (vision_transformer#18)
    assert np.abs(no_identity[0] - product).max() > 1e-3


def test_rollout_discard_ratio_matches_reference():
    maps = random_maps(tokens=6)
    actual = attention_rollout(maps, discard_ratio=0.5)
    np.testing.assert_allclose(actual.numpy(), numpy_rollout(maps, discard_ratio=0.5), atol=1e-5)
    assert not torch.allclose(actual, attention_rollout(maps))


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(5).expand(1, 2, 5, 5)
    torch.testing.assert_close(attention_rollout([eye, eye, eye]), torch.eye(5)[None])


def test_gradient_rollout_from_matches_chefer_formula():
    maps = random_maps(layers=3, seed=1)
    grads = [torch.randn_like(m) for m in random_maps(layers=3, seed=2)]
    actual = gradient_rollout_from(maps, grads)
    arrays_a = [m.double().numpy() for m in maps]
    arrays_g = [g.double().numpy() for g in grads]
    for b in range(2):
        relevance = np.eye(7)
        for a, g in zip(arrays_a, arrays_g):
            a_bar = np.clip(g[b] * a[b], 0, None).mean(axis=0)
            relevance = relevance + a_bar @ relevance
        np.testing.assert_allclose(actual[b].numpy(), relevance, atol=1e-5)


def test_gradient_rollout_depends_on_the_class_and_batches_independently(cifar_model):
    images = torch.randn(2, 3, 32, 32)
    first = gradient_rollout(cifar_model, images, target_class=0)
    second = gradient_rollout(cifar_model, images, target_class=7)
    assert first.shape == (2, 65, 65)
    assert (first[:, 0] - second[:, 0]).abs().max() > 1e-6
    mixed = gradient_rollout(cifar_model, images, target_class=[0, 7])
    torch.testing.assert_close(mixed[0], first[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[1], second[1], atol=1e-5, rtol=1e-4)
    alone = gradient_rollout(cifar_model, images[1:], target_class=7)
    torch.testing.assert_close(alone[0], second[1], atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        predicted = cifar_model(images).argmax(-1)
        relevance_default = gradient_rollout(cifar_model, images)  # works inside no_grad too
    torch.testing.assert_close(relevance_default, gradient_rollout(cifar_model, images, target_class=predicted))


def test_gradient_rollout_uses_true_gradients(cifar_model):
    """∂score/∂A for one layer, checked by a finite difference on that layer's weights."""
    images = torch.randn(1, 3, 32, 32)
    with torch.enable_grad(), capture_attention(cifar_model, keep_graph=True) as captured:
        score = cifar_model(images)[0, 2]
        grad = torch.autograd.grad(score, captured[1][0])[0]
    weights = captured[1][0].detach()
    direction = torch.randn_like(weights)
    epsilon = 1e-3
    module = cifar_model.blocks[1].attn
    original = module.attn_drop.forward

    def shifted(sign):
        module.attn_drop.forward = lambda w: w + sign * epsilon * direction
        try:
            with torch.no_grad(), capture_attention(cifar_model):
                return cifar_model(images)[0, 2].double()
        finally:
            module.attn_drop.forward = original

    finite = (shifted(1) - shifted(-1)) / (2 * epsilon)
    torch.testing.assert_close(finite, (grad * direction).sum().double(), atol=2e-3, rtol=2e-2)


# -- heat maps and distances ---------------------------------------------------------------------


def test_token_heatmap_places_patches_row_major_after_the_prefix():
    row = torch.zeros(2 + 12)
    row[2 + 1 * 4 + 3] = 1.0  # patch at grid row 1, column 3 of a 3×4 grid
    row[0] = row[1] = 5.0  # prefix tokens must be ignored
    grid = token_heatmap(row, (3, 4), num_prefix_tokens=2)
    assert grid.shape == (3, 4)
    assert grid.argmax().item() == 1 * 4 + 3 and grid.max() == 1.0 and grid.min() == 0.0
    image = token_heatmap(row, (3, 4), num_prefix_tokens=2, image_size=(24, 32))
    assert image.shape == (24, 32)
    y, x = divmod(image.argmax().item(), 32)
    assert 8 <= y < 16 and 24 <= x < 32
    raw = token_heatmap(row[None].repeat(3, 1) * 0.5, (3, 4), 2, normalize=False)
    assert raw.shape == (3, 3, 4) and raw.max() == 0.5


def brute_force_distance(maps, rows, cols, patch, prefix):
    result = np.zeros((len(maps), maps[0].shape[1]))
    for layer_index, layer in enumerate(maps):
        array = layer.double().numpy()
        for head in range(array.shape[1]):
            values = []
            for b in range(array.shape[0]):
                for q in range(rows * cols):
                    weights = array[b, head, prefix + q, prefix:]
                    weights = weights / weights.sum()
                    qy, qx = divmod(q, cols)
                    total = 0.0
                    for k in range(rows * cols):
                        ky, kx = divmod(k, cols)
                        total += weights[k] * math.hypot(qy - ky, qx - kx) * patch
                    values.append(total)
            result[layer_index, head] = np.mean(values)
    return result


def test_attention_distance_matches_brute_force():
    maps = random_maps(layers=2, batch=2, heads=3, tokens=1 + 12)
    actual = attention_distance(maps, (3, 4), patch_size=8, num_prefix_tokens=1)
    assert actual.shape == (2, 3)
    np.testing.assert_allclose(actual.numpy(), brute_force_distance(maps, 3, 4, 8, 1), atol=1e-4)


def test_attention_distance_known_cases():
    eye = torch.eye(1 + 9).expand(1, 2, 10, 10)
    assert attention_distance([eye], (3, 3), patch_size=16).abs().max() == 0
    shift = torch.zeros(1, 1, 1 + 3, 1 + 3)  # a 1×3 grid, each patch attends to the next (wrapping)
    shift[0, 0, 0, 0] = 1
    for q, k in [(0, 1), (1, 2), (2, 0)]:
        shift[0, 0, 1 + q, 1 + k] = 1
    distance = attention_distance([shift], (1, 3), patch_size=10).item()
    assert distance == pytest.approx((10 + 10 + 20) / 3)


# -- errors ------------------------------------------------------------------------------------------


def test_errors_name_the_problem(cifar_model):
    with pytest.raises(ValueError, match="unsqueeze"):
        attention_maps(cifar_model, torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        attention_maps(cifar_model, torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        attention_maps(cifar_model, np.zeros((1, 3, 32, 32)))
    with pytest.raises(ValueError, match="MultiHeadSelfAttention"):
        attention_maps(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2)), torch.randn(1, 3, 32, 32))
    with pytest.raises(TypeError, match="nn.Module"):
        attention_maps("vit_cifar_patch4_32", torch.randn(1, 3, 32, 32))
    maps = random_maps()
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(maps, head_fusion="average")
    with pytest.raises(ValueError, match="discard_ratio"):
        attention_rollout(maps, discard_ratio=1.0)
    with pytest.raises(ValueError, match="B, heads, N, N"):
        attention_rollout([m[0] for m in maps])
    with pytest.raises(ValueError, match="same forward pass"):
        attention_rollout([maps[0], maps[1][:, :2]])
    with pytest.raises(TypeError, match="list"):
        attention_rollout([])
    with pytest.raises(ValueError, match="same shape"):
        gradient_rollout_from(maps, maps[:2])
    with pytest.raises(ValueError, match=r"target_class must be in \[0, 9\]"):
        gradient_rollout(cifar_model, torch.randn(1, 3, 32, 32), target_class=10)
    with pytest.raises(TypeError, match="integer class"):
        gradient_rollout(cifar_model, torch.randn(1, 3, 32, 32), target_class=2.5)
    with pytest.raises(ValueError, match="batch of 2"):
        gradient_rollout(cifar_model, torch.randn(2, 3, 32, 32), target_class=[1, 2, 3])
    with pytest.raises(ValueError, match="prefix tokens"):
        token_heatmap(torch.rand(65), (8, 8), num_prefix_tokens=2)
    with pytest.raises(ValueError, match="rollout"):
        token_heatmap(torch.rand(2, 65, 65), (8, 8))
    with pytest.raises(ValueError, match="prefix tokens"):
        attention_distance(maps, (2, 2), patch_size=4, num_prefix_tokens=1)
    with pytest.raises(ValueError, match="patch_size"):
        attention_distance(random_maps(tokens=5), (2, 2), patch_size=0)
