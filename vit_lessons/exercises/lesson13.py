"""Lesson 13 exercises: ToMe's bipartite soft matching, graded against
:func:`vit_lessons.tome.bipartite_soft_matching`."""

from __future__ import annotations

import torch

from ..tome import bipartite_soft_matching
from . import Exercise, register
from .grading import Incorrect, expect_tensor


def bipartite_matching(metric, r):
    """Reference solution: metric (B, n, c) → (merged_a, into_b), each (B, r): which A tokens are merged
    (positions within set A) and into which B token (positions within set B)."""
    metric = metric / metric.norm(dim=-1, keepdim=True)  # unit vectors: dot products are cosine similarities
    set_a, set_b = metric[:, ::2], metric[:, 1::2]  # (B, n_A, c), (B, n_B, c): tokens taken alternately
    scores = set_a @ set_b.transpose(-1, -2)  # (B, n_A, n_B)
    best_score, best_b = scores.max(dim=-1)  # (B, n_A) each: every A token's most similar B token
    merged_a = best_score.argsort(dim=-1, descending=True)[:, :r]  # (B, r): the r most similar edges
    into_b = best_b.gather(1, merged_a)  # (B, r): the partner of each merged A token
    return merged_a, into_b


def _match(metric, r, normalise=-1, split="alternate", best="max", keep="most", drop_first=False, local=True):
    """Bipartite matching with switches for the usual mistakes; returns (merged_a, into_b)."""
    metric = metric.double()
    if drop_first:
        metric = metric[:, 1:]
    if normalise is not None:
        metric = metric / metric.norm(dim=normalise, keepdim=True)
    n = metric.shape[1]
    set_a, set_b = {
        "alternate": (metric[:, ::2], metric[:, 1::2]),
        "swapped": (metric[:, 1::2], metric[:, ::2]),
        "halves": (metric[:, : (n + 1) // 2], metric[:, (n + 1) // 2 :]),
    }[split]
    scores = set_a @ set_b.transpose(-1, -2)  # (B, n_A, n_B)
    best_score, best_b = scores.max(-1) if best == "max" else scores.min(-1)  # (B, n_A)
    if keep == "first":
        merged_a = torch.arange(r).expand(metric.shape[0], r)
    else:
        merged_a = best_score.argsort(dim=-1, descending=keep == "most")[:, :r]
    into_b = best_b.gather(1, merged_a)
    if not local:  # positions in the token sequence instead of within each set
        merged_a, into_b = 2 * merged_a, 2 * into_b + 1
    return merged_a, into_b


def _edges(merged_a: torch.Tensor, into_b: torch.Tensor) -> list[set]:
    """Each image's set of (A position, B position) pairs: the r edges, in any order."""
    return [set(zip(a.tolist(), b.tolist())) for a, b in zip(merged_a, into_b)]


def _matching_guesses(metric: torch.Tensor, r: int) -> dict[str, tuple]:
    n = metric.shape[1]
    guesses = {
        "you used the dot product of the raw features; ToMe uses cosine similarity: divide each token's feature "
        "vector by its norm (metric.norm(dim=-1, keepdim=True)) first": _match(metric, r, normalise=None),
        "the features were normalised over the tokens; normalise each token's feature vector, "
        "metric.norm(dim=-1, keepdim=True)": _match(metric, r, normalise=1),
        "you merged the LEAST similar pairs: link each A token to its most similar B token (max) and keep the r "
        "links with the HIGHEST similarity": _match(metric, r, best="min", keep="least"),
        "you linked each A token to its least similar B token: use the max over B (scores.max(dim=-1))": _match(
            metric, r, best="min"
        ),
        "you kept the r links with the LOWEST similarity; keep the r most similar (sort descending)": _match(
            metric, r, keep="least"
        ),
        "you merged the first r A tokens; merge the r A tokens whose best link is the most similar (sort the "
        "best scores, descending)": _match(metric, r, keep="first"),
        "the sets are the first and second half of the tokens; they alternate: A = metric[:, ::2] (positions 0, "
        "2, 4, ...), B = metric[:, 1::2]": _match(metric, r, split="halves"),
        "A and B are swapped: A is the even positions, metric[:, ::2], B the odd ones, metric[:, 1::2]": _match(
            metric, r, split="swapped"
        ),
        "the indices count tokens in the whole sequence (A token i is token 2i); return positions within each "
        "set: merged_a indexes metric[:, ::2], into_b indexes metric[:, 1::2]": _match(metric, r, local=False),
    }
    if r <= n // 2:  # dropping a token leaves n - 1 tokens, n // 2 of them in A
        guesses[
            "you dropped the first token as a class token: metric holds only patch tokens (the caller leaves the "
            "class token out), so split all of them"
        ] = _match(metric, r, drop_first=True)
    return guesses


def _as_index(value, what: str, shape: tuple) -> torch.Tensor:
    value = expect_tensor(value, what)
    if value.is_floating_point() or value.dtype == torch.bool:
        raise Incorrect(f"{what} has dtype {value.dtype}; return integer indices (torch.long, as argmax gives).")
    if tuple(value.shape) == shape[1:] and shape[0] > 1:
        raise Incorrect(f"{what} has shape {tuple(value.shape)}: match every image of the batch, shape (B, r).")
    return expect_tensor(value, what, shape)


def grade_bipartite_matching(candidate) -> None:
    generator = torch.Generator().manual_seed(13)
    cases = [  # (batch, tokens, channels, r): batch > 1, odd n (A one larger than B), r up to the size of A
        (2, 8, 4, 3),
        (3, 7, 5, 2),
        (1, 9, 3, 5),
        (4, 12, 6, 6),
        (2, 10, 8, 1),
    ]
    for batch, tokens, channels, r in cases:
        # Features of very different lengths, so that dot products and cosine similarities rank differently.
        lengths = torch.rand(batch, tokens, 1, generator=generator) * 4 + 0.2
        metric = torch.randn(batch, tokens, channels, generator=generator) * lengths
        before = metric.clone()
        result = candidate(metric, r)
        if not torch.equal(metric, before):
            raise Incorrect("your function changed metric in place (e.g. metric /= ...); compute new tensors instead.")
        if hasattr(result, "merged_a") and hasattr(result, "into_b"):  # a MergePlan is fine too
            result = (result.merged_a, result.into_b)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            got = f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__
            raise Incorrect(f"return a pair (merged_a, into_b) of (B, r) index tensors; got {got}.")
        what = f"for metric of shape (B, n, c) = {(batch, tokens, channels)} and r = {r}"
        merged_a = _as_index(result[0], f"merged_a {what}", (batch, r))
        into_b = _as_index(result[1], f"into_b {what}", (batch, r))
        if any(len(set(row.tolist())) < r for row in merged_a):
            raise Incorrect(
                f"merged_a {what} lists an A token twice: each A token has ONE link, to its most similar B token "
                "(take the max over B first), then keep the r best of those links."
            )
        plan = bipartite_soft_matching(metric, r)
        expected = _edges(plan.merged_a, plan.into_b)
        answer = _edges(merged_a, into_b)
        if answer != expected and torch.equal(merged_a, into_b):
            raise Incorrect(
                f"{what} every token is merged into its own position: you matched A against A (each token is most "
                "similar to itself). Score A = metric[:, ::2] against B = metric[:, 1::2]."
            )
        if answer != expected:
            hint = next(
                (
                    message
                    for message, (guess_a, guess_b) in _matching_guesses(metric, r).items()
                    if _edges(guess_a, guess_b) == answer
                ),
                "split A = metric[:, ::2], B = metric[:, 1::2]; cosine similarity of every A token with every B "
                "token; each A token's best B partner (max); merge the r A tokens with the highest best scores",
            )
            wrong = sum(len(a ^ e) // 2 for a, e in zip(answer, expected))
            raise Incorrect(f"wrong pairs {what} ({wrong} of {batch * r} (A, B) pairs differ): {hint}.")


register(
    Exercise(
        id="13.bipartite_matching",
        title="ToMe's bipartite soft matching",
        grader=grade_bipartite_matching,
        solution_obj=bipartite_matching,
        hint_text=(
            "metric = metric / metric.norm(dim=-1, keepdim=True); A = metric[:, ::2], B = metric[:, 1::2]; "
            "scores = A @ B.transpose(-1, -2) (B, n_A, n_B); best_score, best_b = scores.max(dim=-1); merged_a = "
            "best_score.argsort(dim=-1, descending=True)[:, :r]; into_b = best_b.gather(1, merged_a)."
        ),
    )
)
