"""vit_lessons.debug: the checks of lesson 14, and the bug zoo each check catches."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_lessons import create_model
from vit_lessons.debug import (
    BUGS,
    activation_stats,
    first_divergence,
    gradient_norms,
    make_buggy_vit,
    overfit_one_batch,
    parity,
    shape_trace,
)


def tiny_vit(**overrides):
    torch.manual_seed(0)
    config = dict(embed_dim=32, depth=2, num_heads=2)
    return create_model("vit_digits_patch2_8", **{**config, **overrides})


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 1, 8, 8, generator=generator), torch.arange(8)  # 8 images, 8 different labels


# -- overfit one batch ---------------------------------------------------------------------------
def test_a_correct_vit_overfits_one_batch(batch):
    losses = overfit_one_batch(tiny_vit(), batch, steps=80, lr=3e-3)
    assert len(losses) == 80 and all(isinstance(loss, float) for loss in losses)
    assert losses[0] > 1.5  # about log(10) at the start
    assert losses[-1] < 0.1


class BlindModel(nn.Module):
    """Forgets its input (a real bug: `x = self.norm(x)` assigned to the wrong name, and so on)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, images):
        return self.head(torch.zeros_like(images).flatten(1))


def test_a_model_that_ignores_its_input_cannot_overfit(batch):
    losses = overfit_one_batch(BlindModel(), batch, steps=60, lr=3e-2)
    assert min(losses) > math.log(8) - 0.05  # a constant output cannot beat the labels' entropy


def test_overfit_rejects_bad_arguments(batch):
    images, labels = batch
    model = tiny_vit()
    with pytest.raises(TypeError, match=r"pair \(images, labels\)"):
        overfit_one_batch(model, images)
    with pytest.raises(ValueError, match="one-hot"):
        overfit_one_batch(model, (images, F.one_hot(labels, 10).float()))
    with pytest.raises(ValueError, match="8 images but 3 labels"):
        overfit_one_batch(model, (images, labels[:3]))
    with pytest.raises(ValueError, match="steps"):
        overfit_one_batch(model, batch, steps=0)
    with pytest.raises(ValueError, match="lr"):
        overfit_one_batch(model, batch, lr=-1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        overfit_one_batch(lambda x: x, batch)


# -- gradient norms and activation statistics ----------------------------------------------------
def test_gradient_norms_match_backward(batch):
    model = tiny_vit()
    model.unused = nn.Linear(2, 2)  # the loss never reaches it
    rows = gradient_norms(model, batch)
    assert [row["name"] for row in rows] == [name for name, _ in model.named_parameters()]
    assert all(p.grad is None for p in model.parameters())  # .grad left alone
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    for row, (name, parameter) in zip(rows, model.named_parameters()):
        if name.startswith("unused"):
            assert row["grad_norm"] is None
        else:
            assert row["grad_norm"] == pytest.approx(parameter.grad.norm().item(), rel=1e-4, abs=1e-8)
            assert row["weight_norm"] == pytest.approx(parameter.norm().item(), rel=1e-6)


def test_activation_stats_in_call_order(batch):
    model = tiny_vit().eval()
    rows = activation_stats(model, batch[0])
    names = [row["name"] for row in rows]
    assert names[0] == "patch_embed.proj" and names[-1] == "head"
    assert (
        names.index("blocks.0.norm1") < names.index("blocks.0.attn") < names.index("blocks.0") < names.index("blocks.1")
    )
    with torch.no_grad():
        logits = model(batch[0])
    head = rows[-1]
    assert head["shape"] == (8, 10) and head["nonfinite"] == 0
    assert head["mean"] == pytest.approx(logits.mean().item(), abs=1e-6)
    assert head["std"] == pytest.approx(logits.std().item(), rel=1e-5)
    assert head["abs_max"] == pytest.approx(logits.abs().max().item(), rel=1e-6)


def test_activation_stats_count_nan(batch):
    images = batch[0].clone()
    images[0, 0, 0, 0] = float("nan")
    rows = {row["name"]: row for row in activation_stats(tiny_vit().eval(), images)}
    assert rows["patch_embed"]["nonfinite"] == 32  # one patch token, all 32 features
    assert rows["head"]["nonfinite"] > 0


def test_shape_trace():
    model = create_model("vit_cifar_patch4_32")
    trace = shape_trace(model, torch.randn(2, 3, 32, 32), max_depth=1)
    assert trace == [
        ("patch_embed", "PatchEmbedding", (2, 64, 128)),
        ("blocks", "Sequential", (2, 65, 128)),
        ("norm", "LayerNorm", (2, 65, 128)),
        ("head", "Linear", (2, 10)),
    ]


def test_shape_trace_keeps_the_rows_before_an_error():
    with pytest.raises(RuntimeError, match="must match") as info:
        shape_trace(make_buggy_vit("missing_class_token"), torch.randn(2, 3, 32, 32))
    assert info.value.trace[-1] == ("patch_embed", "PatchEmbedding", (2, 64, 128))


# -- the bug zoo ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(1)
    model = create_model("vit_cifar_patch4_32").eval()
    with torch.no_grad():  # trained-looking LayerNorms, so that norm bugs show
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.normal_(1.0, 0.3)
                module.bias.normal_(0.0, 0.3)
    return model


# Where each silent bug first shows, found by comparing with the reference layer by layer.
SILENT = {
    "mean_pool": "head",
    "patch_order": "patch_embed",
    "post_norm": "blocks.0.attn",
    "attention_scale": "blocks.0.attn",
    "shared_head_projection": "blocks.0.attn",
    "missing_position_embedding": "blocks.0.norm1",
    "shared_layernorm": "blocks.0.norm1",
}


@pytest.mark.parametrize("bug", list(SILENT))
def test_parity_catches_each_silent_bug(reference, bug):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    buggy = make_buggy_vit(bug)
    assert repr(buggy) == repr(reference)  # print(model) does not show it
    assert parity(buggy, reference, images) > 1e-3  # reference weights load: same names and shapes
    assert first_divergence(buggy, reference, images) == SILENT[bug]


def test_a_correct_copy_has_parity(reference):
    images = torch.randn(2, 3, 32, 32)
    assert parity(create_model("vit_cifar_patch4_32"), reference, images) < 1e-6
    assert first_divergence(reference, reference, images) is None


def test_loud_bugs_raise():
    with pytest.raises(RuntimeError, match=r"\(64\) must match .* \(65\)"):
        make_buggy_vit("missing_class_token")(torch.randn(1, 3, 32, 32))
    with pytest.raises(RuntimeError, match=r"\(101\) must match .* \(65\)"):
        make_buggy_vit("stale_position_embedding")(torch.randn(1, 3, 40, 40))


def test_shared_layernorm_has_fewer_parameters(reference):
    count = sum(p.numel() for p in make_buggy_vit("shared_layernorm").parameters())
    assert sum(p.numel() for p in reference.parameters()) - count == (2 * 4 - 1) * 2 * 128


def test_every_bug_is_tested_and_unknown_bugs_are_rejected():
    assert set(SILENT) | {"missing_class_token", "stale_position_embedding"} == set(BUGS)
    with pytest.raises(ValueError, match="unknown bug 'typo'; choose from"):
        make_buggy_vit("typo")
