"""Checks that catch the bugs learners really meet in ViT code, and a zoo of those bugs.

The checks (lesson 14):

- :func:`shape_trace`: every module's output shape, in call order (a printout that shows a missing
  class token or a wrong patch grid at once);
- :func:`parity`: same weights, same input, compare with a reference model; :func:`first_divergence`
  names the first layer where two models part ways;
- :func:`overfit_one_batch`: a correct model drives the loss on one small batch to near zero; a
  model that cannot is broken (or its learning rate is);
- :func:`gradient_norms` and :func:`activation_stats`: per-layer tables to plot (vanishing or
  exploding gradients, activations that grow block after block, NaN);
- ``torch.autograd.detect_anomaly`` (used directly) names the op that produced a NaN gradient.

The zoo: :func:`make_buggy_vit` builds a :class:`~vit_lessons.vit.VisionTransformer` with one named
bug from :data:`BUGS`. Each buggy model keeps the correct model's parameter names and shapes, so a
reference model's weights load into it and the checks above can compare the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadSelfAttention
from .blocks import EncoderBlock
from .vit import VisionTransformer

__all__ = [
    "shape_trace",
    "parity",
    "first_divergence",
    "overfit_one_batch",
    "gradient_norms",
    "activation_stats",
    "BUGS",
    "bug_names",
    "make_buggy_vit",
]


# -- checks --------------------------------------------------------------------------------------
def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def _check_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(
            f"batch must be a pair (images, labels), got {type(batch).__name__}; pass (images, labels) "
            "as a DataLoader yields them"
        )
    images, labels = batch
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("images and labels must both be tensors")
    if labels.dtype not in (torch.int64, torch.int32) or labels.ndim != 1:
        raise ValueError(
            f"labels must be class indices, a 1-D integer tensor (B,), got dtype {labels.dtype} and shape "
            f"{tuple(labels.shape)}; for one-hot labels use labels.argmax(dim=1)"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels; they must match one to one")
    return images, labels.long()


def _selected_modules(model: nn.Module, max_depth: int) -> list[tuple[str, nn.Module]]:
    skip = (nn.Dropout, nn.Identity)
    return [
        (name, module)
        for name, module in model.named_modules()
        if name and name.count(".") < max_depth and not isinstance(module, skip) and type(module).__name__ != "DropPath"
    ]


def _record_outputs(
    model: nn.Module, images: torch.Tensor, max_depth: int
) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """Run ``model(images)`` and return (name, module, output) for each selected module, in call order."""
    records = []
    hooks = []
    for name, module in _selected_modules(model, max_depth):

        def hook(mod, args, output, name=name):
            if isinstance(output, torch.Tensor):
                records.append((name, mod, output.detach()))

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return records


def shape_trace(model: nn.Module, images: torch.Tensor, max_depth: int = 3) -> list[tuple[str, str, tuple]]:
    """(module name, class name, output shape) for each module, in the order they run.

    ``max_depth`` limits how deep names go: 1 = the model's children, 3 = ``blocks.0.attn`` and the like.
    A module that raises stops the trace: the rows so far are attached to the error as ``error.trace``.
    """
    _check_model(model)
    records = []
    hooks = []
    for name, module in _selected_modules(model, max_depth):

        def hook(mod, args, output, name=name):
            if isinstance(output, torch.Tensor):
                records.append((name, type(mod).__name__, tuple(output.shape)))

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(images)
    except Exception as error:
        error.trace = records
        raise
    finally:
        for hook in hooks:
            hook.remove()
    return records


def parity(model: nn.Module, reference: nn.Module, images: torch.Tensor, copy_weights: bool = True) -> float:
    """Largest absolute difference between ``model(images)`` and ``reference(images)``, both in eval mode.

    With ``copy_weights`` the reference's state dict is loaded into ``model`` first (strict: the names
    and shapes must agree), so any difference comes from the code, not the weights.
    """
    _check_model(model)
    _check_model(reference)
    if copy_weights:
        model.load_state_dict(reference.state_dict())
    model.eval()
    reference.eval()
    with torch.no_grad():
        return (model(images) - reference(images)).abs().max().item()


def first_divergence(
    model: nn.Module, reference: nn.Module, images: torch.Tensor, atol: float = 1e-5, max_depth: int = 3
) -> str | None:
    """The first module (in call order) whose output differs from the reference's same-named module,
    or None when every compared output agrees to ``atol``. Outputs of different shapes count as different.
    Modules that run more than once (a shared module) are compared call by call."""
    _check_model(model)
    _check_model(reference)
    model.eval()
    reference.eval()
    ours = _record_outputs(model, images, max_depth)
    theirs = _record_outputs(reference, images, max_depth)
    reference_calls: dict[str, list[torch.Tensor]] = {}
    for name, _, output in theirs:
        reference_calls.setdefault(name, []).append(output)
    seen: dict[str, int] = {}
    for name, _, output in ours:
        index = seen.get(name, 0)
        seen[name] = index + 1
        expected = reference_calls.get(name, [])
        if index >= len(expected):
            return name
        if output.shape != expected[index].shape or not torch.allclose(output, expected[index], atol=atol, rtol=0):
            return name
    return None


def overfit_one_batch(
    model: nn.Module,
    batch,
    steps: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    loss_fn: Callable = F.cross_entropy,
) -> list[float]:
    """Train ``model`` (in place, train mode) on one batch for ``steps`` AdamW steps; return the losses.

    A correct model memorises a small batch: the loss falls towards zero. A loss that stalls near
    log(classes) points to a bug between input and head (or a learning rate far off).
    """
    _check_model(model)
    images, labels = _check_batch(batch)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters (all requires_grad=False); nothing to overfit")
    from .train import Trainer  # train sits above debug: import when called

    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    criterion = lambda images, logits, targets: loss_fn(logits, targets)  # noqa: E731
    trainer = Trainer.for_model(model, optimizer, criterion=criterion)
    losses = []
    for _ in range(steps):
        loss, _ = trainer.step(images, labels)
        losses.append(math.nan if loss is None else loss.item())
    return losses


def gradient_norms(model: nn.Module, batch, loss_fn: Callable = F.cross_entropy) -> list[dict]:
    """One forward and backward pass on ``batch``: the gradient norm of every parameter.

    Rows, in parameter order: ``name``, ``shape``, ``grad_norm``, ``weight_norm``, ``ratio``
    (grad/weight). A parameter the loss does not reach gets ``grad_norm`` None. The model's ``.grad``
    fields are left untouched (gradients come from ``torch.autograd.grad``).
    """
    _check_model(model)
    images, labels = _check_batch(batch)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    loss = loss_fn(model(images), labels)
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    rows = []
    for (name, parameter), grad in zip(named, grads):
        weight_norm = parameter.detach().norm().item()
        grad_norm = None if grad is None else grad.norm().item()
        rows.append(
            dict(
                name=name,
                shape=tuple(parameter.shape),
                grad_norm=grad_norm,
                weight_norm=weight_norm,
                ratio=None if grad_norm is None or weight_norm == 0 else grad_norm / weight_norm,
            )
        )
    return rows


def activation_stats(model: nn.Module, images: torch.Tensor, max_depth: int = 3) -> list[dict]:
    """Statistics of every module's output, in call order: ``name``, ``module``, ``shape``, ``mean``,
    ``std``, ``abs_max``, ``nonfinite`` (count of NaN/inf). Run in no_grad; the model's mode is kept."""
    _check_model(model)
    rows = []
    for name, module, output in _record_outputs(model, images, max_depth):
        values = output.float()
        finite = values[torch.isfinite(values)]
        rows.append(
            dict(
                name=name,
                module=type(module).__name__,
                shape=tuple(output.shape),
                mean=finite.mean().item() if finite.numel() else float("nan"),
                std=finite.std().item() if finite.numel() > 1 else float("nan"),
                abs_max=finite.abs().max().item() if finite.numel() else float("nan"),
                nonfinite=int(values.numel() - finite.numel()),
            )
        )
    return rows


# -- the bug zoo ---------------------------------------------------------------------------------
BUGS: dict[str, str] = {
    "missing_class_token": "the class token is never prepended, yet the position embedding expects it",
    "mean_pool": "the head reads the mean of the patch tokens, but the weights were trained on the class token",
    "patch_order": (
        "patches are flattened (row, column, channel) while the convolution's weights are (channel, row, column)"
    ),
    "post_norm": "LayerNorm after each residual sum (post-norm) where ViT is pre-norm",
    "attention_scale": "attention scores divided by sqrt(embed_dim) instead of sqrt(head_dim)",
    "shared_head_projection": "every head uses the same q/k/v projection (the first head's)",
    "missing_position_embedding": "the position embedding is never added",
    "shared_layernorm": "one LayerNorm module reused in every block",
    "stale_position_embedding": "the image size changed but the position embedding was not resampled",
}


def _disguise(cls: type, like: type) -> type:
    """Give a buggy subclass its parent's name, so ``print(model)`` does not give the bug away."""
    cls.__name__ = like.__name__
    cls.__qualname__ = like.__qualname__
    return cls


class _EmbedWithoutClassToken(VisionTransformer):
    def embed(self, images):
        tokens = self.patch_embed(images)  # (B, N, D): the class token is forgotten
        return self.pos_drop(tokens + self.pos_embed)  # (1, 1 + N, D) does not broadcast


class _EmbedWithoutPosition(VisionTransformer):
    def embed(self, images):
        tokens = self.patch_embed(images)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return self.pos_drop(torch.cat([cls, tokens], dim=1))  # positions never added


class _MeanPooled(VisionTransformer):
    def pool(self, tokens):
        return tokens[:, self.num_prefix_tokens :].mean(dim=1)  # the weights expect tokens[:, 0]


class _PatchOrderEmbedding(nn.Module):
    """Patchify by reshape, flattening each patch as (row, column, channel), then apply the
    convolution's weights flattened as (channel, row, column): the two orders do not match."""

    def __init__(self, original: nn.Module):
        super().__init__()
        self.proj = original.proj
        for name in ("img_size", "patch_size", "in_chans", "grid_size", "num_patches"):
            setattr(self, name, getattr(original, name))

    def forward(self, images):
        B, C, H, W = images.shape
        P = self.patch_size
        patches = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, P, P, C)
        patches = patches.reshape(B, -1, P * P * C)  # (B, N, P·P·C): the bug
        weight = self.proj.weight.flatten(1)  # (D, C·P·P)
        return F.linear(patches, weight, self.proj.bias)  # (B, N, D)


class _PostNormBlock(EncoderBlock):
    def forward(self, tokens):
        tokens = self.norm1(tokens + self.drop_path1(self.attn(tokens)))
        return self.norm2(tokens + self.drop_path2(self.mlp(tokens)))


class _WrongScaleAttention(MultiHeadSelfAttention):
    def forward(self, tokens, mask=None):
        B, N, D = tokens.shape
        q, k, v = self.split_heads(tokens)  # (B, h, N, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # the bug: sqrt(D), not sqrt(d)
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class _SharedHeadAttention(MultiHeadSelfAttention):
    def split_heads(self, tokens):
        B, N, D = tokens.shape
        h, d = self.num_heads, self.head_dim
        chunks = tokens.reshape(B, N, h, d)  # each head gets a slice of the input ...
        weight = self.qkv.weight.reshape(3, D, D)[:, :d, :d]  # ... and one shared (d, d) projection per q/k/v
        bias = self.qkv.bias.reshape(3, D)[:, :d] if self.qkv.bias is not None else torch.zeros(3, d)
        q, k, v = (torch.einsum("bnhe,fe->bhnf", chunks, weight[i]) + bias[i, None, None, :] for i in range(3))
        return q, k, v


for _buggy in (
    _EmbedWithoutClassToken,
    _EmbedWithoutPosition,
    _MeanPooled,
    _PostNormBlock,
    _WrongScaleAttention,
    _SharedHeadAttention,
):
    _disguise(_buggy, _buggy.__mro__[1])
_PatchOrderEmbedding.__name__ = _PatchOrderEmbedding.__qualname__ = "PatchEmbedding"


def _swap_class(module: nn.Module, buggy: type) -> None:
    module.__class__ = buggy  # same parameters, buggy forward


def _inject_in_blocks(part: str | None, buggy: type):
    def inject(model):
        for block in model.blocks:
            _swap_class(getattr(block, part) if part else block, buggy)

    return inject


def _share_layernorm(model: VisionTransformer) -> None:
    shared = model.blocks[0].norm1
    for block in model.blocks:
        block.norm1 = shared
        block.norm2 = shared


def _stale_position_embedding(model: VisionTransformer) -> None:
    height, width = model.patch_embed.img_size
    patch = model.patch_embed.patch_size
    new = (height + 2 * patch, width + 2 * patch)  # a larger image, e.g. fine-tuning at higher resolution
    model.patch_embed.img_size = new
    model.patch_embed.grid_size = (new[0] // patch, new[1] // patch)
    model.patch_embed.num_patches = model.patch_embed.grid_size[0] * model.patch_embed.grid_size[1]


def _wrap_patch_embedding(model: VisionTransformer) -> None:
    model.patch_embed = _PatchOrderEmbedding(model.patch_embed)


# bug name -> how it is put into a correct model (same parameters, so the correct weights load)
_INJECT: dict[str, Callable[[VisionTransformer], None]] = {
    "missing_class_token": lambda model: _swap_class(model, _EmbedWithoutClassToken),
    "missing_position_embedding": lambda model: _swap_class(model, _EmbedWithoutPosition),
    "mean_pool": lambda model: _swap_class(model, _MeanPooled),
    "patch_order": _wrap_patch_embedding,
    "post_norm": _inject_in_blocks(None, _PostNormBlock),
    "attention_scale": _inject_in_blocks("attn", _WrongScaleAttention),
    "shared_head_projection": _inject_in_blocks("attn", _SharedHeadAttention),
    "shared_layernorm": _share_layernorm,
    "stale_position_embedding": _stale_position_embedding,
}


def make_buggy_vit(bug: str, seed: int | None = 0, **config) -> VisionTransformer:
    """A ViT with one bug from :data:`BUGS`; ``config`` as for :class:`~vit_lessons.vit.VisionTransformer`
    (defaults: the 32-px CIFAR model, ``vit_cifar_patch4_32``). Same parameter names and shapes as
    the correct model, so its weights load into it. ``print(model)`` looks like a correct model.
    """
    if bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r}; choose from {', '.join(BUGS)}")
    from .vit import MODEL_CONFIGS

    config = {**MODEL_CONFIGS["vit_cifar_patch4_32"], **config}
    if seed is not None:
        torch.manual_seed(seed)
    model = VisionTransformer(**config)
    _INJECT[bug](model)
    return model


def bug_names() -> Sequence[str]:
    """The names :func:`make_buggy_vit` accepts."""
    return tuple(BUGS)
