"""Pictures of the model, drawn from the model itself (lessons 00, 06, 07).

- :func:`vit_diagram`: a ViT from image to logits, one box per stage, the tensor shape on every
  arrow, every number read from the model (so the picture cannot drift from the code).
- :func:`block_diagram`: the pre-norm block ViT uses beside the post-norm block of the original
  Transformer, with their residual paths.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch
from torch import nn

from .patches import PatchEmbedding

__all__ = ["vit_stages", "vit_diagram", "block_diagram"]

_COLOURS = {"data": "#e8eef7", "embed": "#fde9d9", "block": "#e2f0d9", "head": "#fff2cc"}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _embedding_stage(model: nn.Module) -> str:
    embed, dim = model.patch_embed, model.embed_dim
    if isinstance(embed, PatchEmbedding):
        p = embed.patch_size
        return f"patch embedding: Conv2d({embed.in_chans}→{dim}, kernel {p}, stride {p})"
    convs = sum(isinstance(m, nn.Conv2d) for m in embed.modules())
    return f"convolutional stem: {convs} convolutions → {dim} channels (a hybrid ViT)"


def vit_stages(model: nn.Module) -> list[tuple[str, str, str]]:
    """(what happens, the tensor shape after it, kind) for each stage of a
    :class:`~vit_lessons.vit.VisionTransformer`, read from the model's own modules."""
    embed, dim = model.patch_embed, model.embed_dim
    (height, width), (rows, cols) = embed.img_size, embed.grid_size
    n, prefix, depth = rows * cols, model.num_prefix_tokens, len(model.blocks)
    block = model.blocks[0]
    heads, hidden = block.attn.num_heads, block.mlp.fc1.out_features
    tokens = f"(B, {prefix + n}, {dim})"
    stages = [(f"image, {height}×{width} pixels", f"(B, {embed.in_chans}, {height}, {width})", "data")]
    stages.append((_embedding_stage(model), f"(B, {n}, {dim}): {rows}×{cols} = {n} patch tokens", "embed"))
    if prefix:
        stages.append(("prepend the class token [CLS] (a learned vector)", tokens, "embed"))
    kind = getattr(model, "pos_embed_type", "learn")
    if kind != "none":
        what = "learned" if kind == "learn" else "fixed 2-D sin-cos"
        stages.append((f"+ position embedding ({what}, one per token)", tokens, "embed"))
    stages.append(
        (
            f"{depth} × encoder block: x + MSA(LN(x)), then x + MLP(LN(x))\n"
            f"MSA: {heads} heads of d = {dim // heads};  MLP: {dim} → {hidden} → {dim}",
            tokens,
            "block",
        )
    )
    if model.global_pool == "avg":
        stages.append(("mean over the patch tokens, then LayerNorm", f"(B, {dim})", "head"))
    else:
        stages.append(("LayerNorm, then take the class token's output", f"(B, {dim})", "head"))
    classes = getattr(model.head, "out_features", dim)
    stages.append((f"head: Linear({dim} → {classes}), one logit per class", f"(B, {classes})", "head"))
    return stages


def _box(ax, x: float, y: float, text: str, colour: str, width: float = 6.4, height: float = 0.62) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.02", fc=colour, ec="0.3", lw=0.8
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, x: float, y_from: float, y_to: float, label: str = "") -> None:
    ax.annotate("", xy=(x, y_to), xytext=(x, y_from), arrowprops=dict(arrowstyle="-|>", color="0.3", lw=0.8))
    if label:
        ax.text(
            x + 0.12, (y_from + y_to) / 2, label, ha="left", va="center", fontsize=7.5, color="0.15", family="monospace"
        )


def vit_diagram(model: nn.Module, name: str | None = None, ax=None):
    """Draw ``model`` from image (top) to logits (bottom); returns the figure."""
    stages = vit_stages(model)
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 0.78 * len(stages) + 0.6), dpi=90)
    step = 1.0
    for index, (text, _, kind) in enumerate(stages):
        y = -index * step
        _box(ax, 3.2, y, text, _COLOURS[kind], height=0.68 if "\n" in text else 0.5)
        if index + 1 < len(stages):
            _arrow(ax, 3.2, y - 0.34 if "\n" in text else y - 0.25, y - step + 0.25, stages[index][1])
    ax.text(3.2, -len(stages) * step + 0.45, f"logits {stages[-1][1]}", ha="center", fontsize=8, family="monospace")
    ax.set_xlim(-0.1, 10.5)
    ax.set_ylim(-len(stages) * step + 0.2, 0.6)
    ax.axis("off")
    title = f"{name or type(model).__name__}: {_count(model):,} parameters (B = batch size)"
    ax.set_title(title, fontsize=10)
    return ax.figure


def _block_column(ax, x: float, steps: list[tuple[str, str]], title: str) -> None:
    """One block top to bottom: boxes and "+" joins, each residual drawn on the left from its fork."""
    y, fork = 0.0, 0.0
    ax.text(x, 0.75, title, ha="center", fontsize=9, weight="bold")
    ax.text(x, 0.35, "x (B, N, D)", ha="center", fontsize=8, family="monospace")
    for text, kind in steps:
        y_next = y - 0.9
        if kind == "fork":
            fork = 0.1 if y == 0 else y - 0.4  # on the arrow into the next box
            continue
        _arrow(ax, x, y + 0.15 if y == 0 else y - 0.22, y_next + 0.22)
        if kind == "add":
            ax.add_patch(plt.Circle((x, y_next), 0.2, fc="white", ec="0.3", lw=0.8))
            ax.text(x, y_next, "+", ha="center", va="center", fontsize=10)
            ax.plot([x, x - 1.5, x - 1.5], [fork, fork, y_next], color="C0", lw=1)
            ax.annotate(
                "", xy=(x - 0.2, y_next), xytext=(x - 1.5, y_next), arrowprops=dict(arrowstyle="-|>", color="C0")
            )
        else:
            _box(ax, x, y_next, text, _COLOURS["block" if kind == "op" else "embed"], width=2.4, height=0.44)
        y = y_next
    _arrow(ax, x, y - 0.22, y - 0.75)
    ax.text(x, y - 0.95, "out (B, N, D)", ha="center", fontsize=8, family="monospace")


def block_diagram(ax=None):
    """Pre-norm (ViT, timm) beside post-norm (the original Transformer); blue lines are the residual paths."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6.2), dpi=90)
    pre = [("", "fork"), ("LayerNorm", "norm"), ("multi-head attention", "op"), ("", "add"),
           ("", "fork"), ("LayerNorm", "norm"), ("MLP", "op"), ("", "add")]  # fmt: skip
    post = [("", "fork"), ("multi-head attention", "op"), ("", "add"), ("LayerNorm", "norm"),
            ("", "fork"), ("MLP", "op"), ("", "add"), ("LayerNorm", "norm")]  # fmt: skip
    _block_column(ax, 2.3, pre, "pre-norm (ViT)")
    _block_column(ax, 7.3, post, "post-norm (Vaswani et al. 2017)")
    ax.text(2.3, -8.0, "x + MSA(LN(x)), then x + MLP(LN(x)):\nthe residual path is never normalised",
            ha="center", fontsize=8)  # fmt: skip
    ax.text(7.3, -8.0, "LN(x + MSA(x)), then LN(x + MLP(x)):\nevery residual passes through a LayerNorm",
            ha="center", fontsize=8)  # fmt: skip
    ax.set_xlim(0, 10)
    ax.set_ylim(-8.4, 1.0)
    ax.axis("off")
    ax.set_title("one encoder block, two ways to place the LayerNorms (blue: residual paths)", fontsize=10)
    return ax.figure
