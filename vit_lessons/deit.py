"""DeiT: data-efficient image Transformers and distillation through attention (Touvron et al. 2021).

Taught in lesson 10 (``notebooks/10_deit_distillation.ipynb``).

A ViT trained on ImageNet-1k alone lags a CNN of its size; DeiT closes the gap with strong
augmentation and a teacher. The teacher (a CNN) speaks through a second prefix token, the
*distillation token*, which runs through the encoder next to the class token and has its own head:

    z0 = [x_class; x_distil; x_p^1 E; ...; x_p^N E] + E_pos          (E_pos has N + 2 rows)
    y_cls = head(LN(z_L^0)),   y_dist = head_dist(LN(z_L^1))

Training (paper Sec. 4, with ψ the softmax, Z_t the teacher's logits, y the label):

    hard:  L = ½ CE(y_cls, y) + ½ CE(y_dist, argmax Z_t)
    soft:  L = (1 - λ) CE(y_cls, y) + λ τ² KL(ψ(Z_t / τ) ‖ ψ(y_dist / τ))

At test time the two heads' softmax-free logits are averaged. The non-distilled DeiT models are
plain ViTs (:class:`~vit_lessons.vit.VisionTransformer`) trained with the DeiT recipe; the distilled
ones are :class:`DistilledVisionTransformer`, laid out as timm's ``VisionTransformerDistilled``
(``dist_token``, ``head_dist``, ``pos_embed`` of N + 2 rows), so timm state dicts load strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .cnn import resnet18_cifar
from .position import learned_position_embedding
from .timing import time_call
from .vit import VisionTransformer, _init_weights

__all__ = [
    "DistilledVisionTransformer",
    "hard_distillation_loss",
    "soft_distillation_loss",
    "DistillationLoss",
    "DISTILL_MODES",
    "teacher_num_classes",
    "resnet18_cifar",
    "load_teacher",
    "head_agreement",
    "train_epoch",
    "evaluate_accuracy",
    "images_per_second",
    "MODEL_REGISTRY",
]

DISTILL_MODES = ("none", "hard", "soft")


class DistilledVisionTransformer(VisionTransformer):
    """ViT with a distillation token and a second head: (B, C, H, W) → logits.

    In training mode (and with ``distilled_training=True``, the default) ``forward`` returns the
    pair ``(class_logits, dist_logits)``, each (B, classes), for :class:`DistillationLoss`; in eval
    mode it returns their average (B, classes), as the DeiT paper's code does. timm's
    ``VisionTransformerDistilled`` starts with ``distilled_training=False`` (it then returns the
    average in training too, for plain fine-tuning); ``set_distilled_training`` switches it.
    """

    def __init__(self, *args, distilled_training: bool = True, **kwargs):
        # The parent sets self.embed_dim, patch_embed, cls_token and friends; only after it has run
        # can we read them (the seed's DeiT read self.embed_dim first and died with AttributeError).
        super().__init__(*args, **kwargs)
        if self.global_pool != "token" or self.cls_token is None:
            raise ValueError("a distilled ViT reads its class and distillation tokens: use global_pool='token'")
        if self.pos_embed_type != "learn":
            raise ValueError(
                f"a distilled ViT needs learned position embeddings, got pos_embed={self.pos_embed_type!r}"
            )
        self.num_prefix_tokens = 2  # class + distillation (lesson 09's attention tools read this)
        self.distilled_training = distilled_training
        self.dist_token = learned_position_embedding(1, self.embed_dim)  # (1, 1, D), trunc-normal std 0.02
        self.pos_embed = learned_position_embedding(self.patch_embed.num_patches + 2, self.embed_dim)
        self.head_dist = nn.Linear(self.embed_dim, self.num_classes) if self.num_classes > 0 else nn.Identity()
        self.head_dist.apply(_init_weights)

    def set_distilled_training(self, enable: bool = True) -> None:
        self.distilled_training = enable

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, 2 + N, D): [class; distillation; patches] + positions."""
        tokens = self.patch_embed(images)  # (B, N, D)
        batch = tokens.shape[0]
        prefix = torch.cat([self.cls_token.expand(batch, -1, -1), self.dist_token.expand(batch, -1, -1)], dim=1)
        tokens = torch.cat([prefix, tokens], dim=1) + self.pos_embed  # (B, 2 + N, D)
        return self.pos_drop(tokens)

    def forward_heads(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads, always: (B, 2 + N, D) → ((B, classes), (B, classes))."""
        class_logits = self.head(self.head_drop(tokens[:, 0]))
        dist_logits = self.head_dist(self.head_drop(tokens[:, 1]))
        return class_logits, dist_logits

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False):
        if pre_logits:
            return (self.head_drop(tokens[:, 0]) + self.head_drop(tokens[:, 1])) / 2  # (B, D)
        class_logits, dist_logits = self.forward_heads(tokens)
        if self.training and self.distilled_training:
            return class_logits, dist_logits
        return (class_logits + dist_logits) / 2  # (B, classes)


# -- losses -------------------------------------------------------------------------------------
def _check_logits(student_logits, teacher_logits) -> None:
    for name, value in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(value, torch.Tensor) or value.ndim != 2:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a (B, classes) tensor, got {shape}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "differ: the teacher must predict the same classes as the student (same num_classes, same order)"
        )


def hard_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """CE(student, argmax teacher): the teacher's decision is the label. (B, K), (B, K) → scalar."""
    _check_logits(student_logits, teacher_logits)
    return F.cross_entropy(student_logits, teacher_logits.detach().argmax(dim=-1))


def soft_distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 3.0
) -> torch.Tensor:
    """τ² · KL(ψ(Z_t/τ) ‖ ψ(Z_s/τ)), averaged over the batch (Hinton et al. 2015). (B, K) → scalar.

    The τ² keeps the gradient scale independent of τ (soft targets' gradients shrink as 1/τ²).
    DeiT's own code divides the summed KL by B·K rather than B, a constant K times smaller; we use
    the per-sample mean, the KL divergence as defined.
    """
    _check_logits(student_logits, teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2


def teacher_num_classes(teacher: nn.Module) -> int | None:
    """The number of classes a classifier predicts, read from ``num_classes`` or its last Linear."""
    value = getattr(teacher, "num_classes", None)
    if isinstance(value, int):
        return value
    last_linear = None
    for module in teacher.modules():
        if isinstance(module, nn.Linear):
            last_linear = module
    return last_linear.out_features if last_linear is not None else None


class DistillationLoss(nn.Module):
    """The DeiT training loss around a base criterion and a frozen teacher.

    ``loss = loss_fn(images, outputs, labels)``: ``outputs`` is the student's output, either one
    (B, K) tensor (a plain ViT: the teacher term then uses the same logits, "a second loss only")
    or the pair (class logits, distillation logits) of a :class:`DistilledVisionTransformer` in
    training mode. ``distill``: ``"none"`` (base criterion only), ``"hard"`` or ``"soft"``; the
    weight of the teacher term is ``alpha`` (DeiT: 0.5 for hard, 0.1 for soft with τ = 3).
    """

    def __init__(
        self,
        teacher: nn.Module | None,
        distill: str = "hard",
        alpha: float = 0.5,
        temperature: float = 3.0,
        num_classes: int | None = None,
        base_criterion: nn.Module | None = None,
    ):
        super().__init__()
        if distill not in DISTILL_MODES:
            raise ValueError(f"distill must be one of {DISTILL_MODES}, got {distill!r}")
        if distill != "none" and teacher is None:
            raise ValueError(f"distill={distill!r} needs a teacher model; pass one or use distill='none'")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha weights the teacher term and must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if teacher is not None and num_classes is not None:
            teacher_classes = teacher_num_classes(teacher)
            if teacher_classes is not None and teacher_classes != num_classes:
                raise ValueError(
                    f"the teacher predicts {teacher_classes} classes but the student {num_classes}: a teacher "
                    "must be trained on the student's classes (same dataset, same class order)"
                )
        # A convolutional teacher runs channels-last: the same values, about 1.8x faster on a CPU under
        # bf16 autocast (measured on the course's ResNet-9; docs/benchmarks/course-checkpoints.md).
        self.channels_last = teacher is not None and any(isinstance(m, nn.Conv2d) for m in teacher.modules())
        if self.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        self.teacher = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.distill = distill
        self.alpha = alpha
        self.temperature = temperature
        self.base_criterion = base_criterion or nn.CrossEntropyLoss()

    def train(self, mode: bool = True):  # the teacher stays in eval mode (BatchNorm statistics frozen)
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(
        self, images: torch.Tensor, outputs, labels: torch.Tensor, teacher_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``teacher_logits`` (B, K), when given, replace running the teacher on ``images`` (logits
        computed once for un-augmented data: the same values, a teacher forward pass saved per step)."""
        if isinstance(outputs, (tuple, list)):
            if len(outputs) != 2:
                raise ValueError(f"expected (class_logits, dist_logits), got {len(outputs)} outputs")
            class_logits, dist_logits = outputs
        else:
            class_logits = dist_logits = outputs
        base = self.base_criterion(class_logits, labels)
        if self.distill == "none":
            return base
        if teacher_logits is None:
            if self.channels_last and images.ndim == 4:
                images = images.contiguous(memory_format=torch.channels_last)  # (B, C, H, W), NHWC in memory
            with torch.no_grad():
                teacher_logits = self.teacher(images)  # (B, K)
        teacher_logits = teacher_logits.detach().float()  # fp32 for the softmax, also under autocast
        if teacher_logits.shape != dist_logits.shape:
            raise ValueError(
                f"teacher logits {tuple(teacher_logits.shape)} and student logits {tuple(dist_logits.shape)} differ: "
                "the teacher must predict the same classes as the student"
            )
        if self.distill == "hard":
            teacher_term = hard_distillation_loss(dist_logits, teacher_logits)
        else:
            teacher_term = soft_distillation_loss(dist_logits, teacher_logits, self.temperature)
        return (1 - self.alpha) * base + self.alpha * teacher_term


# -- the teacher --------------------------------------------------------------------------------
TEACHER_BUILDERS = {"resnet18_cifar": resnet18_cifar}


def load_teacher(spec, num_classes: int | None = None, course_loader=None, device="cpu") -> nn.Module:
    """A frozen teacher in eval mode, from ``spec``:

    - an ``nn.Module`` (used as is);
    - a checkpoint path written by ``vit_lessons.train`` (``model_name``, ``model_kwargs``,
      ``model``) or by :func:`train_epoch`'s users (same keys; ``model_name="resnet18_cifar"`` works);
    - a course checkpoint name, through ``course_loader`` (``vit_lessons.train.load_course_checkpoint``).

    Raises ValueError when the teacher's number of classes differs from ``num_classes``.
    """
    from . import create_model

    if isinstance(spec, nn.Module):
        teacher = spec
    elif Path(str(spec)).is_file():
        state = torch.load(spec, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "model" not in state or "model_name" not in state:
            raise ValueError(
                f"{spec} is not a teacher checkpoint: it needs the keys 'model_name', 'model_kwargs' and 'model' "
                "(a state dict), as vit_lessons.train's best.pt has"
            )
        name, kwargs = state["model_name"], dict(state.get("model_kwargs", {}))
        teacher = TEACHER_BUILDERS[name](**kwargs) if name in TEACHER_BUILDERS else create_model(name, **kwargs)
        teacher.load_state_dict(state["model"])
    elif isinstance(spec, str) and course_loader is not None:
        teacher = course_loader(spec)
    else:
        raise ValueError(
            f"teacher {spec!r} is neither a module nor an existing checkpoint file"
            + ("" if course_loader is None else " nor a course checkpoint name")
        )
    found = teacher_num_classes(teacher)
    if num_classes is not None and found is not None and found != num_classes:
        raise ValueError(
            f"the teacher predicts {found} classes but the student {num_classes}: a teacher must be trained on "
            "the student's classes (same dataset, same class order)"
        )
    return teacher.to(device).eval().requires_grad_(False)


# -- a small training loop for the lesson ----------------------------------------------------------
def train_epoch(
    model,
    images,
    labels,
    optimizer,
    loss_fn=None,
    batch_size: int = 128,
    scheduler=None,
    augment=None,
    generator=None,
    teacher_logits=None,
) -> float:
    """One epoch over in-memory tensors (B, C, H, W) and labels (B,); ``loss_fn(images, outputs,
    labels)`` (a :class:`DistillationLoss`) or plain cross-entropy. ``teacher_logits`` (B, K),
    aligned with ``images``, are the teacher's precomputed outputs (only without ``augment``).
    Returns the mean training loss."""
    if teacher_logits is not None and augment is not None:
        raise ValueError("precomputed teacher_logits match the un-augmented images only; drop augment or them")
    from .train import Trainer  # train sits above deit (it imports DistillationLoss): import when called

    loss_fn = loss_fn or DistillationLoss(None, distill="none")
    loss_fn.train()
    trainer = Trainer.for_model(model, optimizer, scheduler, criterion=loss_fn, grad_clip=1.0)
    order = torch.randperm(len(images), generator=generator)
    total, seen = 0.0, 0
    for start in range(0, len(images), batch_size):
        index = order[start : start + batch_size]
        batch, targets = images[index], labels[index]
        if augment is not None:
            batch = augment(batch)
        extra = {} if teacher_logits is None else {"teacher_logits": teacher_logits[index]}
        loss, _ = trainer.step(batch, targets, **extra)
        if loss is not None:
            total += loss.item() * len(index)
            seen += len(index)
    return total / max(seen, 1)


@torch.no_grad()
def evaluate_accuracy(model, images, labels, batch_size: int = 500) -> float:
    """Top-1 accuracy in eval mode (a distilled model averages its heads)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        correct += (logits.argmax(-1) == labels[start : start + batch_size]).sum().item()
    return correct / len(images)


@torch.no_grad()
def head_agreement(model: DistilledVisionTransformer, images: torch.Tensor) -> float:
    """Mean cosine similarity between the class head's and the distillation head's logits (eval mode).

    DeiT reports 0.06 between the class and distillation *tokens* at the input and 0.93 at the
    output: related, not identical, which is why the second token adds something."""
    model.eval()
    class_logits, dist_logits = model.forward_heads(model.forward_features(images))
    return F.cosine_similarity(class_logits, dist_logits, dim=-1).mean().item()


@torch.no_grad()
def images_per_second(model, images: torch.Tensor, repeats: int = 3) -> float:
    """Inference throughput in eval mode: ``images`` over the median of ``repeats`` timed passes."""
    model.eval()
    return len(images) / time_call(model, images, repeats=repeats, warmup=1)


def _deit(embed_dim: int, depth: int, num_heads: int) -> dict:
    return dict(patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=num_heads)


# name -> (class, default kwargs); vit_lessons.create_model picks these up. The non-distilled DeiTs
# are plain ViTs (the same architecture as vit_*_patch16_224; DeiT is a training recipe).
MODEL_REGISTRY: dict[str, tuple[type[nn.Module], dict]] = {
    "deit_tiny_patch16_224": (VisionTransformer, _deit(192, 12, 3)),
    "deit_small_patch16_224": (VisionTransformer, _deit(384, 12, 6)),
    "deit_base_patch16_224": (VisionTransformer, _deit(768, 12, 12)),
    "deit_tiny_distilled_patch16_224": (DistilledVisionTransformer, _deit(192, 12, 3)),
    "deit_small_distilled_patch16_224": (DistilledVisionTransformer, _deit(384, 12, 6)),
    "deit_base_distilled_patch16_224": (DistilledVisionTransformer, _deit(768, 12, 12)),
    # The lesson's student: vit_cifar_patch4_32 (8×8 = 64 tokens of 4×4 pixels, 4 blocks of width 128)
    # with a distillation token and head.
    "deit_cifar_distilled_patch4_32": (
        DistilledVisionTransformer,
        dict(img_size=32, patch_size=4, num_classes=10, embed_dim=128, depth=4, num_heads=4, mlp_ratio=2.0),
    ),
}
