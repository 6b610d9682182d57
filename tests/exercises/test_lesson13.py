"""Bug zoo for 13.bipartite_matching (run by test_zoos.py); matchings written in other styles (cosine_similarity,
topk, loops, the package's MergePlan, pairs in any order) are accepted."""

import pytest
import torch
import torch.nn.functional as F

from vit_lessons.exercises import get_exercise
from vit_lessons.tome import bipartite_soft_matching


def _match(metric, r, *, cosine=True, norm_dim=-1, split="alternate", best="max", keep="most", first_token=True):
    """A written-out matching with switches for the usual mistakes."""
    if not first_token:
        metric = metric[:, 1:]
    if cosine:
        metric = metric / metric.norm(dim=norm_dim, keepdim=True)
    n = metric.shape[1]
    if split == "alternate":
        set_a, set_b = metric[:, ::2], metric[:, 1::2]
    elif split == "swapped":
        set_a, set_b = metric[:, 1::2], metric[:, ::2]
    else:
        set_a, set_b = metric[:, : (n + 1) // 2], metric[:, (n + 1) // 2 :]
    scores = set_a @ set_b.transpose(-1, -2)
    best_score, best_b = scores.max(-1) if best == "max" else scores.min(-1)
    if keep == "first":
        merged_a = torch.arange(r).expand(metric.shape[0], r)
    else:
        merged_a = best_score.argsort(-1, descending=keep == "most")[:, :r]
    return merged_a, best_b.gather(1, merged_a)


def _bug(name, **mistake):
    def candidate(metric, r):
        return _match(metric, r, **mistake)

    candidate.__name__ = name
    return candidate


def a_against_a(metric, r):
    metric = metric / metric.norm(dim=-1, keepdim=True)
    set_a = metric[:, ::2]
    best_score, best = (set_a @ set_a.transpose(-1, -2)).max(-1)
    merged_a = best_score.argsort(-1, descending=True)[:, :r]
    return merged_a, best.gather(1, merged_a)


def top_r_of_all_pairs(metric, r):
    metric = metric / metric.norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)  # (B, n_A, n_B)
    flat = scores.flatten(1).topk(r, dim=-1).indices  # the r best pairs, an A token may appear twice
    return flat // scores.shape[-1], flat % scores.shape[-1]


def token_indices(metric, r):
    merged_a, into_b = _match(metric, r)
    return 2 * merged_a, 2 * into_b + 1


def returns_plan_tuple(metric, r):
    return tuple(bipartite_soft_matching(metric, r))  # (kept_a, merged_a, into_b)


def float_indices(metric, r):
    merged_a, into_b = _match(metric, r)
    return merged_a.float(), into_b.float()


def first_image_only(metric, r):
    merged_a, into_b = _match(metric, r)
    return merged_a[0], into_b[0]


def normalises_in_place(metric, r):
    metric /= metric.norm(dim=-1, keepdim=True)
    return _match(metric, r)


ZOO = {
    "13.bipartite_matching": {
        _bug("dot_product", cosine=False): "dot product.*cosine similarity",
        _bug("normalised_over_tokens", norm_dim=1): "normalised over the tokens",
        _bug("least_similar", best="min", keep="least"): "merged the LEAST similar pairs",
        _bug("least_similar_partner", best="min"): "least similar B token",
        _bug("keeps_lowest_links", keep="least"): "kept the r links with the LOWEST",
        _bug("first_r", keep="first"): "merged the first r A tokens",
        _bug("halves", split="halves"): "first and second half",
        _bug("swapped_sets", split="swapped"): "A and B are swapped",
        _bug("drops_class_token", first_token=False): "dropped the first token as a class token",
        a_against_a: "matched A against A",
        top_r_of_all_pairs: "lists an A token twice",
        token_indices: "whole sequence",
        returns_plan_tuple: "return a pair \\(merged_a, into_b\\).*got 3 values",
        float_indices: "integer indices",
        first_image_only: "every image of the batch",
        normalises_in_place: "in place",
    }
}


def cosine_topk(metric, r):
    scores = F.cosine_similarity(metric[:, ::2, None], metric[:, None, 1::2], dim=-1)  # (B, n_A, n_B)
    best_score, best_b = scores.max(-1)
    merged_a = best_score.topk(r, dim=-1).indices
    return merged_a, best_b.gather(1, merged_a)


def loops_float64_sorted_int32(metric, r):
    merged, into = [], []
    for image in metric.double():
        unit = F.normalize(image, dim=-1)
        scores = unit[::2] @ unit[1::2].T
        best_score, best_b = scores.max(-1)
        order = torch.argsort(-best_score)[:r].sort().values  # pairs in A order, not by similarity
        merged.append(order)
        into.append(best_b[order])
    return torch.stack(merged).int(), torch.stack(into).int()


def package_plan(metric, r):
    return bipartite_soft_matching(metric, r)


@pytest.mark.parametrize(
    "candidate", [cosine_topk, loops_float64_sorted_int32, package_plan, _match], ids=lambda f: f.__name__
)
def test_matching_in_other_styles_is_correct(candidate):
    result = get_exercise("13.bipartite_matching").grade(candidate)
    assert result.status == "correct", result


def test_lesson_toy_example_matches_the_reference():
    """The notebook's toy example: the 4th token is almost the 3rd, so A token 1 merges into B token 1."""
    namespace = {}
    exec(get_exercise("13.bipartite_matching").solution_source("mine"), namespace)
    metric = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.1]]])
    merged_a, into_b = namespace["mine"](metric, 1)
    assert merged_a.tolist() == [[1]] and into_b.tolist() == [[1]]
