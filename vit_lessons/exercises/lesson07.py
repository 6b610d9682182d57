"""Lesson 07 exercises: count a ViT's parameters by hand, graded against
:func:`vit_lessons.count_parameters` on :class:`vit_lessons.VisionTransformer` built on the meta device."""

from __future__ import annotations

import math
import numbers

import torch

from ..vit import VisionTransformer
from . import Exercise, register
from .grading import Incorrect, as_count


def count_parameters(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes):
    """Reference solution: the parameters of a ViT (class token, learned positions, qkv bias, the
    paper's pre-norm blocks, a final LayerNorm and a linear head; ``num_classes=0`` means no head)."""
    D = embed_dim
    hidden = int(D * mlp_ratio)  # the MLP's hidden width, truncated to an int as nn.Linear needs
    num_patches = (img_size // patch_size) ** 2  # N
    patch_embed = in_chans * patch_size * patch_size * D + D  # Conv2d weight + bias
    cls_token = D
    pos_embed = (num_patches + 1) * D  # one vector per patch and one for the class token
    layer_norm = 2 * D  # weight and bias
    attention = (D * 3 * D + 3 * D) + (D * D + D)  # qkv and the output projection
    mlp = (D * hidden + hidden) + (hidden * D + D)  # fc1 and fc2
    block = 2 * layer_norm + attention + mlp
    head = D * num_classes + num_classes if num_classes > 0 else 0
    return patch_embed + cls_token + pos_embed + depth * block + layer_norm + head


_NAMES = ("embed_dim", "depth", "mlp_ratio", "patch_size", "img_size", "in_chans", "num_classes")

# Configurations chosen so each usual mistake shows as its own pattern of errors: odd widths,
# non-square-free grids, a fractional MLP ratio, one channel, no head, depth 0.
_CONFIGS = [
    dict(embed_dim=192, depth=12, mlp_ratio=4.0, patch_size=16, img_size=224, in_chans=3, num_classes=1000),
    dict(embed_dim=128, depth=4, mlp_ratio=2.0, patch_size=4, img_size=32, in_chans=3, num_classes=10),
    dict(embed_dim=48, depth=3, mlp_ratio=2.5, patch_size=7, img_size=28, in_chans=1, num_classes=7),
    dict(embed_dim=36, depth=2, mlp_ratio=1.5, patch_size=5, img_size=40, in_chans=2, num_classes=0),
    dict(embed_dim=20, depth=0, mlp_ratio=3.0, patch_size=2, img_size=8, in_chans=1, num_classes=3),
    dict(embed_dim=30, depth=1, mlp_ratio=2.0, patch_size=3, img_size=12, in_chans=3, num_classes=5),
    # embed_dim * mlp_ratio = 72.6: the hidden width is int(72.6) = 72 (timm: int(dim * mlp_ratio)), not 73 or 72.6
    dict(embed_dim=22, depth=2, mlp_ratio=3.3, patch_size=4, img_size=16, in_chans=3, num_classes=4),
]
_FRACTIONAL = _CONFIGS[-1]
_FRACTIONAL_HIDDEN = _FRACTIONAL["embed_dim"] * _FRACTIONAL["mlp_ratio"]
_TRUNCATE = (
    "the MLP's hidden width is int(embed_dim * mlp_ratio), truncated to a whole number of features as "
    f"nn.Linear needs (timm: int(dim * mlp_ratio)); with embed_dim={_FRACTIONAL['embed_dim']}, "
    f"mlp_ratio={_FRACTIONAL['mlp_ratio']} that is {int(_FRACTIONAL_HIDDEN)}, "
)


def _reference(config: dict) -> int:
    with torch.device("meta"):
        model = VisionTransformer(num_heads=1, **config)
    return sum(p.numel() for p in model.parameters())


def _usual_mistakes(c: dict, right: int) -> dict[str, int]:
    """What each typical mistake would answer for configuration ``c``."""
    D, L, P, C, K = c["embed_dim"], c["depth"], c["patch_size"], c["in_chans"], c["num_classes"]
    hidden = int(D * c["mlp_ratio"])
    N = (c["img_size"] // P) ** 2
    return {
        "you are embed_dim (D) short: count the class token (1×D), the patch projection's bias (D) and the "
        "class token's row of the position embedding, which has N + 1 rows": right - D,
        "forgot the position embedding ((N + 1)·D parameters)": right - (N + 1) * D,
        "N is the number of patches, (img_size // patch_size) ** 2; you used img_size // patch_size": right
        - (N - c["img_size"] // P) * D,
        "the patch projection sees in_chans·P·P inputs per patch; you left out in_chans": right - (C - 1) * P * P * D,
        "qkv maps D to 3·D (queries, keys and values): you counted a D×D layer": right - L * (2 * D * D + 2 * D),
        "the attention's output projection (D×D + D per block) is missing": right - L * (D * D + D),
        "each block has two LayerNorms (norm1, norm2), each with 2·D parameters": right - L * 2 * D,
        "a LayerNorm has a weight and a bias (2·D), not D": right - (2 * L + 1) * D,
        "you are 2·D short: count the final LayerNorm after the last block (2·D) and the class token (D) with "
        "its row of the position embedding (D)": right - 2 * D,
        "the biases are missing (every nn.Linear and the patch Conv2d has one)": right
        - (D + L * (3 * D + D + hidden + D) + K),
        "the MLP's hidden width is int(embed_dim * mlp_ratio), not a fixed 4·embed_dim": right
        + L * (2 * D + 1) * (4 * D - hidden),
        "the head has num_classes outputs plus num_classes biases; with num_classes=0 there is no head": right - K,
        _TRUNCATE + f"not {_FRACTIONAL_HIDDEN:.3g}: you left it untruncated": right
        + L * (2 * D + 1) * (D * c["mlp_ratio"] - hidden),
        _TRUNCATE + f"not round({_FRACTIONAL_HIDDEN:.3g}) = {round(_FRACTIONAL_HIDDEN)}": right
        + L * (2 * D + 1) * (round(D * c["mlp_ratio"]) - hidden),
    }


def _explains(answer, mistaken) -> bool:
    """``answer`` is what a mistake gives (a float one when the mistake leaves a fraction in)."""
    return answer == mistaken or math.isclose(answer, mistaken, rel_tol=0, abs_tol=1e-6)


def _as_number(answer):
    """A real number to compare with the mistakes, or None (then as_count says what is wrong)."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, numbers.Real) and not isinstance(answer, bool) and math.isfinite(answer):
        return answer
    return None


def grade_count_parameters(candidate) -> None:
    raw = [candidate(*(config[name] for name in _NAMES)) for config in _CONFIGS]
    expected = [_reference(config) for config in _CONFIGS]
    numbers_ = [_as_number(answer) for answer in raw]
    if None not in numbers_:
        # Name the mistake that explains every wrong answer, if one does; some leave a fraction in the count.
        wrong = [(n, right, config) for n, right, config in zip(numbers_, expected, _CONFIGS) if n != right]
        for mistake in _usual_mistakes(_CONFIGS[0], expected[0]) if wrong else ():
            if all(_explains(n, _usual_mistakes(config, right)[mistake]) for n, right, config in wrong):
                raise Incorrect(mistake + ".")
    answers = [as_count(answer, "the parameter count") for answer in raw]
    if answers == expected:
        return
    index = next(i for i, (a, e) in enumerate(zip(answers, expected)) if a != e)
    shown = ", ".join(f"{name}={_CONFIGS[index][name]}" for name in _NAMES)
    raise Incorrect(
        f"for {shown} you counted {answers[index]:,}, the model has {expected[index]:,} "
        f"(off by {answers[index] - expected[index]:+,}). Compare each term with "
        "sum(p.numel() for p in module.parameters()) of one part of a real model."
    )


register(
    Exercise(
        id="07.count_parameters",
        title="Count a ViT's parameters by hand",
        grader=grade_count_parameters,
        solution_obj=count_parameters,
        hint_text=(
            "Add up: patch projection (in_chans·P·P·D + D), class token (D), position embedding ((N + 1)·D with "
            "N = (img_size // P)²), and per block two LayerNorms (2·D each), qkv (D·3D + 3D), output projection "
            "(D·D + D), MLP (D·h + h + h·D + D with h = int(D·mlp_ratio)); then the final LayerNorm (2·D) and the "
            "head (D·K + K, nothing when num_classes=0)."
        ),
    )
)
