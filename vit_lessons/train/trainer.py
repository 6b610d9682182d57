"""The training step, once: :class:`Trainer` (AdamW, warm-up + cosine, autocast, clipping, EMA), and evaluation.

Lesson 08, section 3 writes the step out by hand and checks it equals :meth:`Trainer.step`; every
loop in the package (``train()``, DeiT's ``train_epoch``, ``debug.overfit_one_batch``, the
throughput bench) steps through it. No weight decay on biases, norms, the class token and position
embeddings; logits go to fp32 before the softmax; a non-finite loss or gradient skips the step, and
``max_bad_steps`` in a row stop training with an error instead of writing NaN weights.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from .checkpoint import CheckpointError
from .config import TrainConfig
from .distributed import Distributed
from .precision import PrecisionPolicy, resolve_precision

__all__ = ["Trainer", "make_optimizer", "param_groups", "warmup_cosine", "predict", "evaluate", "unwrap"]

TIME_WARMUP_FRACTION = 0.1
NO_DECAY_NAMES = (
    "pos_embed",
    "cls_token",
    "dist_token",
    "relative_position_bias_table",
)  # with a time budget, the warm-up lasts at most this share of it


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` and ``DistributedDataParallel`` wrappers."""
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer groups: decay on weight matrices only, none on biases, norms, the class and distillation
    tokens, position embeddings and Swin's relative-position bias table (timm's ``no_weight_decay`` set)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(NO_DECAY_NAMES)
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimizer over :func:`param_groups`: AdamW, or SGD with Nesterov momentum (CNNs)."""
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up to 1, then a cosine down to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _clock_cosine(trainer: Trainer, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    # With a time budget the run sets trainer.time_progress (0 → 1 as the clock runs out) before each
    # step and the cosine follows it, not the step count. The warm-up ends after warmup_epochs or a
    # tenth of the budget, whichever comes first (a slow model on a short budget would otherwise spend
    # all its steps warming up).
    def factor(step: int) -> float:
        progress = min(1.0, trainer.time_progress)
        warm = min(1.0, max((step + 1) / warmup_steps, progress / TIME_WARMUP_FRACTION))
        return warm * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    return factor


def ema_with_warmup(decay: float, power: float = 2 / 3) -> Callable:
    """An EMA update for :class:`~torch.optim.swa_utils.AveragedModel` whose decay warms up.

    After ``t`` updates the decay is ``min(decay, 1 - (1 + t) ** -power)`` (timm's ``ModelEmaV3``
    warm-up): 0.95 after 100 steps, 0.99 after 1,000. A fixed 0.999 would leave the average of a
    short run (a few hundred steps) mostly made of its random initial weights.
    """

    def update(ema_params, params, num_averaged: Tensor) -> None:
        # num_averaged is a tensor on the model's device: the decay is computed there, without a sync
        warm = 1 - (1 + num_averaged.float()) ** -power  # fp32: Apple GPUs have no fp64
        weight = 1 - torch.clamp(warm, max=decay)  # how far to move toward the current weights
        for ema_param, param in zip(ema_params, params):
            if ema_param.is_floating_point():
                ema_param.lerp_(param, weight.to(ema_param.dtype))
            else:  # integer buffers (BatchNorm's num_batches_tracked), as torch's own EMA treats them
                ema_param.copy_(ema_param * (1 - weight) + param * weight)

    return update


class Trainer:
    """Model, optimizer, schedule, scaler and EMA for one run; :meth:`step` is one training step.

    ``criterion(images, outputs, labels, **loss_kwargs)`` replaces label-smoothed cross-entropy
    (e.g. :class:`vit_lessons.deit.DistillationLoss`). ``optimizer`` and ``scheduler`` replace the
    config's AdamW and warm-up + cosine (a lesson that builds its own; ``scheduler=None`` then means
    a constant learning rate).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        policy: PrecisionPolicy,
        device,
        steps_per_epoch: int,
        dist_info: Distributed | None = None,
        compile: bool = False,
        criterion: Callable | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler=None,
    ):
        self.config, self.policy, self.device = config, policy, torch.device(device)
        self.criterion = criterion
        self.dist = dist_info or Distributed()
        self.model = model.to(self.device)
        self.time_progress = 0.0
        if optimizer is None:
            optimizer = make_optimizer(self.model, config)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor(steps_per_epoch))
        # a constant factor when a caller brings its own optimizer and no schedule
        self.optimizer = optimizer
        self.scheduler = scheduler or torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=policy.use_scaler)
        self.ema = None
        if config.ema_decay:
            self.ema = AveragedModel(self.model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
        self.forward_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=ids)
        if compile:
            self.forward_model = torch.compile(self.forward_model)
        self.bad_steps = 0  # consecutive
        self.skipped_steps = 0  # total

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler=None,
        criterion: Callable | None = None,
        grad_clip: float | None = None,
        precision: str = "fp32",
        max_bad_steps: int = 5,
    ) -> Trainer:
        """A trainer for a model and optimizer built elsewhere (a lesson's, a debugging tool's, a benchmark's)."""
        device = next(model.parameters()).device
        config = TrainConfig(
            name="custom",
            dataset="custom",
            model=type(model).__name__,
            grad_clip=grad_clip,
            label_smoothing=0.0,
            max_bad_steps=max_bad_steps,
        )
        policy = resolve_precision(precision, device)
        return cls(model, config, policy, device, 1, criterion=criterion, optimizer=optimizer, scheduler=scheduler)

    def _lr_factor(self, steps_per_epoch: int) -> Callable[[int], float]:
        config = self.config
        warmup = max(1, round(config.warmup_epochs * steps_per_epoch))
        if config.time_budget is None:
            return warmup_cosine(config.epochs * steps_per_epoch, warmup, config.min_lr_ratio)
        return _clock_cosine(self, warmup, config.min_lr_ratio)

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and save as ``best.pt``: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.policy.dtype, enabled=self.policy.dtype is not None)

    def _all_finite(self, value: torch.Tensor) -> bool:
        # every rank must agree to step, or DDP hangs
        return self.dist.all_true(torch.isfinite(value).all().float())

    def _skip(self, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps += 1
        self.skipped_steps += 1
        warnings.warn(
            f"non-finite {what} at step {self.scheduler.last_epoch}: step skipped "
            f"({self.bad_steps} in a row, stopping at {self.config.max_bad_steps})"
        )
        if self.bad_steps >= self.config.max_bad_steps:
            raise FloatingPointError(
                f"{self.bad_steps} consecutive non-finite training steps: stopped before the weights became NaN. "
                "Lower --lr or the warm-up length, use --precision fp32/bf16, or check the data for NaN/inf"
            )

    def _loss(self, images, labels, loss_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            outputs = self.forward_model(images)  # (B, classes), or a distilled ViT's pair; bf16/fp16
            if self.criterion is not None:  # a teacher runs under autocast too; the loss in fp32
                outputs = tuple(o.float() for o in outputs) if isinstance(outputs, tuple) else outputs.float()
                loss = self.criterion(images, outputs, labels, **loss_kwargs)
        logits = (outputs[0] + outputs[1]) / 2 if isinstance(outputs, tuple) else outputs  # what eval predicts
        if self.criterion is None:
            # Softmax and loss in fp32: log-probabilities of 10 classes underflow in fp16.
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.config.label_smoothing)
        return loss, logits

    def step(
        self, images: torch.Tensor, labels: torch.Tensor, **loss_kwargs
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """One step. Returns (loss, logits): loss is None when the step was skipped as non-finite."""
        self.forward_model.train()
        loss, logits = self._loss(images, labels, loss_kwargs)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # no-op without a scaler; lets us clip true gradients
        max_norm = self.config.grad_clip if self.config.grad_clip else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        # One host synchronisation per step: the loss and the gradient norm are checked together. (With
        # fp16 the scaler checks the gradients itself, skipping the step and lowering its scale.)
        checked = loss.detach().float().reshape(1)
        if not self.policy.use_scaler:
            checked = torch.cat([checked, grad_norm.detach().float().reshape(1)])  # (2,)
        if not self._all_finite(checked):
            self._skip("loss" if not torch.isfinite(loss).item() else "gradient")
            self.scheduler.step()
            return None, logits
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.bad_steps = 0
        return loss.detach(), logits

    def state_dict(self) -> dict:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.policy.use_scaler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict, path: Path) -> None:
        try:
            unwrap(self.model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.policy.use_scaler and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None:
                if state.get("ema") is None:
                    raise KeyError("the checkpoint has no EMA weights")
                self.ema.load_state_dict(state["ema"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise CheckpointError(f"checkpoint {path} does not match this model/optimizer: {error}") from error


@torch.no_grad()
def predict(
    model: nn.Module, loader, policy: PrecisionPolicy | None = None, tta_flip: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits (N, classes) in fp32 and labels (N,) of a loader, on the CPU.

    ``tta_flip`` averages the logits of each image and its left-right mirror image (test-time
    augmentation with the flip the model was trained with; twice the evaluation cost). Not to be
    confused with :func:`vit_lessons.pretrained.predict`, which labels one image.
    """
    was_training = model.training
    model.eval()
    device_type = next(model.parameters()).device.type
    dtype = policy.dtype if policy else None
    outputs, targets = [], []
    for images, labels in loader:
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            logits = model(images).float()  # (B, classes)
            if tta_flip:
                logits = (logits + model(images.flip(-1)).float()) / 2  # mirror along W
        outputs.append(logits.cpu())
        targets.append(labels.cpu())
    model.train(was_training)
    return torch.cat(outputs), torch.cat(targets)  # (N, classes), (N,)


def evaluate(
    model, loader, policy=None, dist_info: Distributed | None = None, tta_flip: bool = False
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy 0–1) over a loader, summed across ranks under torchrun."""
    logits, labels = predict(model, loader, policy, tta_flip)
    loss_sum = F.cross_entropy(logits, labels, reduction="sum").item()
    correct = (logits.argmax(1) == labels).sum().item()
    # nccl reduces GPU tensors only: reduce on the model's device
    reduce_device = next(model.parameters()).device
    loss_sum, correct, count = (dist_info or Distributed()).all_reduce([loss_sum, correct, len(labels)], reduce_device)
    return loss_sum / count, correct / count
