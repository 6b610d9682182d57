"""Lesson 14 exercise: find the bug hidden in a ViT, using the checks of :mod:`vit_lessons.debug`.

``ex = get_exercise("14.find_the_bug")`` gives ``ex.mystery_model()`` (a ViT with one bug from
:data:`vit_lessons.debug.BUGS`, printed exactly like a correct one), ``ex.reference_model()`` (a
correct ViT of the same configuration) and ``ex.bug_names()``. The student's answer is a function
returning the bug's name (or the name itself); the grader accepts the name and its usual spellings.
"""

from __future__ import annotations

import re

import torch

from ..debug import BUGS, make_buggy_vit
from . import Exercise, register
from .grading import Incorrect

MYSTERY_BUG = "attention_scale"
_SEED = 14

# Other ways students write the same bug; matched after lower-casing and turning every run of
# non-alphanumeric characters into one underscore.
ALIASES: dict[str, set[str]] = {
    "attention_scale": {
        "attention_scale",
        "attention_scaling",
        "scale",
        "scaling",
        "wrong_scale",
        "wrong_scaling",
        "scale_by_embed_dim",
        "sqrt_embed_dim",
        "sqrt_d_model",
        "embed_dim_scaling",
    },
    "post_norm": {"post_norm", "postnorm", "post_layernorm", "norm_after_residual"},
    "shared_head_projection": {"shared_head_projection", "shared_projection", "heads_share_projection", "shared_qkv"},
    "mean_pool": {"mean_pool", "mean_pooling", "avg_pool", "average_pooling", "wrong_pooling"},
    "patch_order": {"patch_order", "wrong_patch_order", "patchify_order"},
    "missing_class_token": {"missing_class_token", "no_class_token", "forgotten_class_token", "missing_cls_token"},
    "missing_position_embedding": {
        "missing_position_embedding",
        "no_position_embedding",
        "missing_pos_embed",
        "no_pos_embed",
    },
    "shared_layernorm": {"shared_layernorm", "shared_layer_norm", "reused_layernorm", "shared_norm"},
    "stale_position_embedding": {
        "stale_position_embedding",
        "wrong_position_embedding_size",
        "position_embedding_size",
    },
}

# Why each wrong answer does not fit the mystery model: the check that rules it out.
RULED_OUT: dict[str, str] = {
    "post_norm": (
        "the blocks are pre-norm: feed the same tokens to mystery.blocks[0].attn and reference.blocks[0].attn "
        "(weights copied) and they already disagree, so the bug is inside the attention, not in where the norms sit"
    ),
    "shared_head_projection": (
        "each head has its own projection: the q, k, v from mystery.blocks[0].attn.split_heads(tokens) equal the "
        "reference's, so the bug comes after the projection"
    ),
    "mean_pool": "the outputs differ well before pooling: first_divergence names a block, not the head",
    "patch_order": "patch_embed's output equals the reference's (first_divergence is later)",
    "missing_class_token": "the model runs, and shape_trace shows 65 tokens, class token included",
    "missing_position_embedding": "blocks[0].norm1's input and output equal the reference's, positions included",
    "shared_layernorm": "every block has its own LayerNorms (mystery.blocks[0].norm1 is not mystery.blocks[1].norm1)",
    "stale_position_embedding": "the model runs at the image size it was built for (32 px)",
}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def find_the_bug():
    """Reference solution: the bug in ex.mystery_model(). first_divergence points at blocks.0.attn;
    split_heads gives the reference's q, k, v, but the output differs, and the difference shrinks
    to zero when the scores are divided by sqrt(embed_dim) instead of sqrt(head_dim)."""
    return "attention_scale"


def grade_find_the_bug(candidate) -> None:
    answer = candidate() if callable(candidate) else candidate
    if answer is None:
        raise NotImplementedError
    if not isinstance(answer, str):
        raise Incorrect(
            f"return the bug's name as a string, e.g. 'post_norm'; got {type(answer).__name__}. "
            f"Names: {', '.join(BUGS)}"
        )
    name = _normalise(answer)
    matched = next((bug for bug, spellings in ALIASES.items() if name in spellings), None)
    if matched is None:
        raise Incorrect(f"unknown bug name {answer!r}; name one of: {', '.join(BUGS)}")
    if matched != MYSTERY_BUG:
        raise Incorrect(f"{matched!r} is a real bug in the zoo, but not this model's: {RULED_OUT[matched]}.")


class BugHuntExercise(Exercise):
    """An exercise whose candidate is a name; it also hands out the models to investigate."""

    def mystery_model(self):
        """A ViT (the 32-px CIFAR configuration) with one hidden bug; random weights."""
        return make_buggy_vit(MYSTERY_BUG, seed=_SEED)

    def reference_model(self):
        """A correct ViT of the same configuration (same random weights as the mystery model)."""
        from ..vit import MODEL_CONFIGS, VisionTransformer

        torch.manual_seed(_SEED)
        return VisionTransformer(**MODEL_CONFIGS["vit_cifar_patch4_32"])

    @staticmethod
    def bug_names() -> list[str]:
        return list(BUGS)


register(
    BugHuntExercise(
        id="14.find_the_bug",
        title="Find the bug",
        grader=grade_find_the_bug,
        solution_obj=find_the_bug,
        hint_text=(
            "copy the reference's weights into the mystery model, then debug.first_divergence(mystery, reference, "
            "images) names the first module whose output differs. Feed that module the same input in both models "
            "and compare its pieces (for attention: split_heads, the scores, the softmax) one by one."
        ),
        success_message="That is the bug: the scores must be divided by sqrt(head_dim), not sqrt(embed_dim).",
    )
)
