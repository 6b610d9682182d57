"""14.find_the_bug: the grader names why each wrong answer does not fit (the zoo, run by test_zoos.py),
and the mystery model really has the bug the reference solution names."""

import pytest
import torch

from vit_lessons.debug import BUGS, first_divergence, make_buggy_vit, parity
from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("14.find_the_bug")


WRONG = {
    "post_norm": "not this model's: the blocks are pre-norm",
    "shared_head_projection": "split_heads",
    "mean_pool": "before pooling",
    "patch_order": "patch_embed",
    "missing_class_token": "65 tokens",
    "missing_position_embedding": "positions included",
    "shared_layernorm": "own LayerNorms",
    "stale_position_embedding": "32 px",
}


def _answer(name):
    def answer():
        return name

    answer.__name__ = name
    return answer


ZOO = {"14.find_the_bug": {_answer(name): reason for name, reason in WRONG.items()}}


def test_every_other_zoo_bug_has_a_reason(ex):
    assert set(WRONG) | {"attention_scale"} == set(BUGS) == set(ex.bug_names())


@pytest.mark.parametrize(
    "answer, message",
    [("layer norm", "unknown bug name"), (3, "as a string"), (lambda: ["post_norm"], "as a string")],
)
def test_unusable_answers(ex, answer, message):
    result = ex.grade(answer)
    assert result.status == "incorrect" and message in result.message, result


@pytest.mark.parametrize("answer", ["attention_scale", "Attention scale", "scale by embed_dim", "sqrt(embed_dim)"])
def test_spellings_of_the_right_answer(ex, answer):
    assert ex.grade(answer).status == "correct"
    assert ex.grade(lambda: answer).status == "correct"


def test_an_answer_of_none_is_not_attempted(ex):
    assert ex.grade(lambda: None).status == "not_attempted"


def test_the_mystery_model_has_the_bug_the_solution_names(ex):
    mystery, reference = ex.mystery_model(), ex.reference_model()
    assert repr(mystery) == repr(reference)  # printing it gives nothing away
    assert torch.equal(mystery.pos_embed, reference.pos_embed)  # same random weights
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert parity(mystery, reference, images) > 1e-4
    assert first_divergence(mystery, reference, images) == "blocks.0.attn"
    # The same bug built on purpose matches the mystery model exactly.
    twin = make_buggy_vit(namespace_answer(ex))
    assert parity(twin, reference, images) == pytest.approx(parity(mystery, reference, images), abs=0)


def namespace_answer(ex):
    namespace = {}
    exec(ex.solution_source("answer"), namespace)
    return namespace["answer"]()
