"""DeiT against timm (parameter counts, strict loading, logits), and the distillation losses
against values computed by hand."""

import math

import pytest
import torch
from torch import nn

import vit_lessons as vl
from vit_lessons.deit import (
    DistillationLoss,
    DistilledVisionTransformer,
    hard_distillation_loss,
    head_agreement,
    load_teacher,
    resnet18_cifar,
    soft_distillation_loss,
    train_epoch,
)

timm = pytest.importorskip("timm")

DEIT_NAMES = [
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "deit_base_patch16_224",
    "deit_tiny_distilled_patch16_224",
    "deit_small_distilled_patch16_224",
    "deit_base_distilled_patch16_224",
]


@pytest.mark.parametrize("name", DEIT_NAMES)
def test_parameter_count_and_layout_match_timm(name):
    with torch.device("meta"):
        reference = timm.create_model(name)
    ours = vl.create_model(name, device="meta")
    assert vl.count_parameters(ours) == sum(p.numel() for p in reference.parameters())
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in reference.state_dict().items()
    }
    assert ("dist_token" in ours.state_dict()) == ("distilled" in name)


def test_published_parameter_counts():
    # DeiT paper Table 1: Ti 5M, S 22M, B 86M; the distilled models add a token, N+2 positions and a head.
    counts = {name: vl.count_parameters(vl.create_model(name, device="meta")) for name in DEIT_NAMES}
    assert [round(counts[n] / 1e6) for n in DEIT_NAMES[:3]] == [6, 22, 87]
    for size, dim in (("tiny", 192), ("small", 384), ("base", 768)):
        extra = counts[f"deit_{size}_distilled_patch16_224"] - counts[f"deit_{size}_patch16_224"]
        assert extra == dim + dim + (dim * 1000 + 1000)  # dist_token, one more position, head_dist


def _timm_and_ours(name, **config):
    torch.manual_seed(0)
    reference = timm.create_model(name, **config).eval()
    ours = vl.create_model(name, device="meta", **config)
    # Build on meta and take timm's tensors: skips our (slow on CPU) initialisation of 5-86M weights.
    ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    return reference, ours.eval()


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"])
def test_tiny_logits_match_timm_at_224(name):
    reference, ours = _timm_and_ours(name)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in DEIT_NAMES if "tiny" not in n])
def test_small_and_base_logits_match_timm_at_224(name):
    reference, ours = _timm_and_ours(name)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224"])
def test_small_and_base_widths_match_timm_at_reduced_depth(name):
    reference, ours = _timm_and_ours(name, depth=1, img_size=64, num_classes=10)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=1e-4)


def test_training_mode_returns_both_heads_eval_their_average_like_timm():
    reference, ours = _timm_and_ours("deit_tiny_distilled_patch16_224", depth=2, img_size=32, num_classes=10)
    reference.set_distilled_training(True)
    images = torch.randn(3, 3, 32, 32)
    ours.train()
    reference.train()
    with torch.no_grad():
        class_logits, dist_logits = ours(images)
        expected = reference(images)
        torch.testing.assert_close(class_logits, expected[0])
        torch.testing.assert_close(dist_logits, expected[1])
        assert not torch.allclose(class_logits, dist_logits)
        ours.eval()
        torch.testing.assert_close(ours(images), (class_logits + dist_logits) / 2)
    ours.set_distilled_training(False)
    ours.train()
    with torch.no_grad():
        assert isinstance(ours(images), torch.Tensor)  # timm's default: plain fine-tuning


def test_our_weights_load_into_timm_and_positional_args_work():
    # The seed's DeiT read num_classes from kwargs only; positional arguments must work too.
    ours = DistilledVisionTransformer(32, 4, 3, 10, 64, 2, 4).eval()
    assert ours.head_dist.out_features == 10 and ours.num_prefix_tokens == 2
    assert ours.pos_embed.shape == (1, 64 + 2, 64)
    reference = timm.create_model(
        "deit_tiny_distilled_patch16_224",
        img_size=32,
        patch_size=4,
        num_classes=10,
        embed_dim=64,
        depth=2,
        num_heads=4,
    ).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-5, rtol=1e-5)


def test_set_img_size_keeps_both_prefix_tokens():
    model = DistilledVisionTransformer(img_size=32, patch_size=4, num_classes=10, embed_dim=32, depth=1, num_heads=2)
    before = model.pos_embed.detach().clone()
    model.set_img_size(48)
    assert model.pos_embed.shape == (1, 144 + 2, 32)
    torch.testing.assert_close(model.pos_embed[:, :2], before[:, :2])
    expected = timm.layers.resample_abs_pos_embed(before, [12, 12], num_prefix_tokens=2)
    torch.testing.assert_close(model.pos_embed.detach(), expected, atol=1e-5, rtol=1e-5)


def test_distilled_model_refuses_average_pooling():
    with pytest.raises(ValueError, match="global_pool='token'"):
        DistilledVisionTransformer(img_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=2, global_pool="avg")


# -- losses, by hand -----------------------------------------------------------------------------
def test_hard_distillation_loss_by_hand():
    student = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax: (1/2, 1/2), (3/4, 1/4)
    teacher = torch.tensor([[1.0, 3.0], [5.0, -1.0]])  # teacher decides: class 1, class 0
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2  # -log(1/2), -log(3/4), mean
    assert hard_distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_soft_distillation_loss_by_hand():
    tau = 2.0
    teacher = torch.tensor([[2 * math.log(3.0), 0.0], [0.0, 0.0]])  # at τ=2: (3/4, 1/4) and (1/2, 1/2)
    student = torch.tensor([[0.0, 0.0], [0.0, 2 * math.log(3.0)]])  # at τ=2: (1/2, 1/2) and (1/4, 3/4)
    kl_first = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    kl_second = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    expected = tau**2 * (kl_first + kl_second) / 2  # τ² · KL(teacher ‖ student), mean over the batch
    assert soft_distillation_loss(student, teacher, tau).item() == pytest.approx(expected, rel=1e-6)
    assert soft_distillation_loss(teacher, teacher, tau).item() == pytest.approx(0.0, abs=1e-7)


class FixedTeacher(nn.Module):
    """Returns given logits whatever the images; counts its calls."""

    def __init__(self, logits):
        super().__init__()
        self.fc = nn.Linear(1, logits.shape[1])  # so its number of classes can be read
        self.register_buffer("logits", logits)
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        return self.logits


def test_distillation_loss_combines_terms_by_hand():
    labels = torch.tensor([0, 0])
    class_logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # CE: log 2, log(4/3)
    dist_logits = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # CE to anything: log 2
    teacher = FixedTeacher(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    images = torch.zeros(2, 3, 4, 4)
    ce_labels = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    hard = DistillationLoss(teacher, "hard", alpha=0.5, num_classes=2)
    assert hard(images, (class_logits, dist_logits), labels).item() == pytest.approx(
        0.5 * ce_labels + 0.5 * math.log(2.0), rel=1e-6
    )
    # A plain ViT (one output): the teacher term reads the same logits ("only a second loss").
    # Teacher says class 1 for both; the logits give it 1/2 and 1/4: CE log 2 and log 4.
    single = hard(images, class_logits, labels).item()
    assert single == pytest.approx(0.5 * ce_labels + 0.5 * (math.log(2.0) + math.log(4.0)) / 2, rel=1e-6)
    none = DistillationLoss(None, "none")
    assert none(images, (class_logits, dist_logits), labels).item() == pytest.approx(ce_labels, rel=1e-6)
    soft = DistillationLoss(teacher, "soft", alpha=0.1, temperature=1.0)
    expected = 0.9 * ce_labels + 0.1 * soft_distillation_loss(dist_logits, teacher.logits, 1.0).item()
    assert soft(images, (class_logits, dist_logits), labels).item() == pytest.approx(expected, rel=1e-6)


def test_precomputed_teacher_logits_equal_running_the_teacher():
    torch.manual_seed(0)
    teacher = nn.Linear(12, 10)  # a "teacher" on flattened 2x2 RGB images
    flat_teacher = nn.Sequential(nn.Flatten(), teacher)
    loss_fn = DistillationLoss(flat_teacher, "soft", alpha=0.3, num_classes=10)
    images, labels = torch.randn(6, 3, 2, 2), torch.randint(0, 10, (6,))
    outputs = (torch.randn(6, 10), torch.randn(6, 10))
    with torch.no_grad():
        cached = flat_teacher(images)
    torch.testing.assert_close(
        loss_fn(images, outputs, labels), loss_fn(images, outputs, labels, teacher_logits=cached)
    )
    different = loss_fn(images, outputs, labels, teacher_logits=torch.zeros(6, 10))
    assert not torch.allclose(different, loss_fn(images, outputs, labels))
    with pytest.raises(ValueError, match="un-augmented"):
        train_epoch(nn.Linear(1, 1), images, labels, None, loss_fn, augment=lambda x: x, teacher_logits=cached)


def test_a_convolutional_teacher_runs_channels_last_with_the_same_logits():
    torch.manual_seed(0)
    teacher = vl.create_model("resnet9_cifar").eval()
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with torch.no_grad():
        expected = teacher(images)  # NCHW, before the loss converts it
    loss_fn = DistillationLoss(teacher, "soft", alpha=0.5, num_classes=10)
    assert loss_fn.channels_last
    assert teacher.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    outputs = torch.randn(4, 10)
    torch.testing.assert_close(
        loss_fn(images, outputs, labels), loss_fn(images, outputs, labels, teacher_logits=expected), atol=1e-5, rtol=0
    )
    assert not DistillationLoss(nn.Sequential(nn.Flatten(), nn.Linear(12, 10)), "hard").channels_last


def test_no_gradient_reaches_the_teacher_and_it_stays_in_eval():
    teacher = resnet18_cifar(10)
    loss_fn = DistillationLoss(teacher, "soft", num_classes=10).train()
    assert not teacher.training
    student = vl.create_model("deit_cifar_distilled_patch4_32", depth=1).train()
    images = torch.randn(2, 3, 32, 32)
    loss_fn(images, student(images), torch.tensor([1, 2])).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.dist_token.grad is not None and student.head_dist.weight.grad.abs().sum() > 0


def test_teacher_with_other_classes_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="teacher predicts 100 classes but the student 10"):
        DistillationLoss(resnet18_cifar(100), "hard", num_classes=10)
    loss_fn = DistillationLoss(FixedTeacher(torch.zeros(2, 5)), "hard")  # no num_classes given: caught when it runs
    with pytest.raises(ValueError, match="same classes"):
        loss_fn(torch.zeros(2, 3, 4, 4), torch.zeros(2, 10), torch.tensor([0, 1]))
    path = tmp_path / "teacher.pt"
    torch.save(
        {
            "model_name": "resnet18_cifar",
            "model_kwargs": {"num_classes": 100},
            "model": resnet18_cifar(100).state_dict(),
        },
        path,
    )
    with pytest.raises(ValueError, match="teacher predicts 100 classes but the student 10"):
        load_teacher(path, num_classes=10)
    assert not load_teacher(path, num_classes=100).training
    torch.save({"weights": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a teacher checkpoint"):
        load_teacher(tmp_path / "bad.pt", num_classes=10)
    with pytest.raises(ValueError, match="neither a module nor an existing checkpoint"):
        load_teacher("no_such_teacher", num_classes=10)


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="distill must be one of"):
        DistillationLoss(None, "kl")
    with pytest.raises(ValueError, match="needs a teacher"):
        DistillationLoss(None, "soft")
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(resnet18_cifar(10), "hard", alpha=2.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        soft_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="same classes"):
        hard_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_head_agreement_is_a_cosine():
    model = vl.create_model("deit_cifar_distilled_patch4_32", depth=1)
    value = head_agreement(model, torch.randn(4, 3, 32, 32))
    assert -1.0 <= value <= 1.0
    with torch.no_grad():
        model.head_dist.load_state_dict(model.head.state_dict())
    assert head_agreement(model, torch.randn(4, 3, 32, 32)) < 1.0  # different tokens, same head
