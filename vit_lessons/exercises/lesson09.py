"""Lesson 09 exercises: attention rollout and mean attention distance, graded against
:func:`vit_lessons.interpret.attention_rollout` and :func:`vit_lessons.interpret.attention_distance`."""

from __future__ import annotations

import torch

from ..interpret import attention_distance as reference_distance
from ..interpret import attention_rollout as reference_rollout
from . import Exercise, register
from .grading import Incorrect, as_float32, expect_tensor, prefix_tokens_case


def _random_maps(layers: int, batch: int, heads: int, tokens: int, generator: torch.Generator, spread: float = 1.5):
    """``layers`` attention maps (batch, heads, tokens, tokens), each row a softmax over the keys."""
    return [
        (torch.randn(batch, heads, tokens, tokens, generator=generator) * spread).softmax(-1) for _ in range(layers)
    ]


def _call_on_maps(candidate, maps: list, *args):
    """Call the candidate on a copy of the list; it must change neither the list nor the maps."""
    before = [layer.clone() for layer in maps]
    result = candidate(list(maps), *args)
    if any(not torch.equal(layer, copy) for layer, copy in zip(maps, before)):
        raise Incorrect("your function changed the attention maps in place; compute new tensors instead.")
    return result


# -- 09.attention_rollout ---------------------------------------------------------------------------
def rollout_maps(maps):
    """Reference solution: Abnar & Zuidema's rollout. maps: list of (B, h, N, N), first layer first → (B, N, N)."""
    import torch

    B, _, N, _ = maps[0].shape
    eye = torch.eye(N, dtype=maps[0].dtype, device=maps[0].device)  # (N, N): the residual path
    joint = eye.expand(B, N, N)  # (B, N, N): before the first layer each token holds only itself
    for attn in maps:
        mixed = 0.5 * attn.mean(dim=1) + 0.5 * eye  # (B, N, N): heads averaged, plus the residual
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)  # each row sums to 1 again
        joint = mixed @ joint  # the newer layer multiplies from the left
    return joint


def _roll(maps, fuse="mean", residual=True, normalise=-1, newest_left=True, product=True):
    """Rollout with switches for the usual mistakes (``normalise``: a dim, or None for none)."""
    stacked = torch.stack(maps).double()  # (L, B, h, N, N)
    fused = {"mean": stacked.mean(2), "max": stacked.amax(2), "sum": stacked.sum(2)}[fuse]  # (L, B, N, N)
    eye = torch.eye(fused.shape[-1], dtype=fused.dtype)
    result = eye.expand_as(fused[0])
    for layer in fused:
        mixed = 0.5 * layer + 0.5 * eye if residual else layer
        if normalise is not None:
            mixed = mixed / mixed.sum(dim=normalise, keepdim=True)
        if not product:
            result = result * mixed
        else:
            result = mixed @ result if newest_left else result @ mixed
    return result.float()


def _rollout_guesses(maps: list) -> dict[str, torch.Tensor]:
    reference = reference_rollout(maps)
    per_head = [_roll([layer[:, head : head + 1] for layer in maps]) for head in range(maps[0].shape[1])]
    guesses = {
        "the identity (residual) term is missing: use 0.5 * mean_heads(A) + 0.5 * I for every layer": _roll(
            maps, residual=False
        ),
        "the identity term is missing and the rows are not renormalised: Â = 0.5 * mean_heads(A) + 0.5 * I, then "
        "divide each row by its sum": _roll(maps, residual=False, normalise=None),
        "the layers are multiplied in the wrong order: the newer layer multiplies from the LEFT, "
        "R = Â_L ⋯ Â_2 Â_1 (result = Â @ result)": _roll(maps, newest_left=False),
        "the rows are not renormalised: these maps' rows do not sum to 1 (captured with attention dropout on), so "
        "after adding the identity divide each row of Â by its sum": _roll(maps, normalise=None),
        "you renormalised the columns: each ROW of Â must sum to 1 (sum over dim=-1)": _roll(maps, normalise=-2),
        "you took the max over the heads; average them (attn.mean(dim=1))": _roll(maps, fuse="max"),
        "you took the max over the heads and did not renormalise the rows; average the heads, and divide each row "
        "of Â by its sum": _roll(maps, fuse="max", normalise=None),
        "you summed over the heads; average them (attn.mean(dim=1))": _roll(maps, fuse="sum"),
        "you rolled out each head on its own and averaged at the end: average the heads of every layer first, "
        "then chain the layers": torch.stack(per_head).mean(0),
        "the layers are multiplied elementwise (*); chain them with a matrix product (@)": _roll(maps, product=False),
        "only the last layer is used: chain every layer, R = Â_L ⋯ Â_2 Â_1": _roll(maps[-1:]),
        "the result is transposed: row i is what token i holds after the last layer, R = Â_L ⋯ Â_1 with "
        "Â = 0.5 * A + 0.5 * I (rows are queries)": reference.transpose(-2, -1),
    }
    if len(maps) > 1:
        guesses["the first layer is left out: start from R = I and multiply in every layer, Â_1 included"] = _roll(
            maps[1:]
        )
    return guesses


def _dropout_maps(layers: int, batch: int, heads: int, tokens: int, generator: torch.Generator):
    """Maps whose rows do not sum to 1: softmax maps after dropout (p = 0.25, kept entries scaled by 1/0.75)."""
    maps = _random_maps(layers, batch, heads, tokens, generator)
    return [layer * (torch.rand(layer.shape, generator=generator) > 0.25) / 0.75 for layer in maps]


def grade_rollout(candidate) -> None:
    generator = torch.Generator().manual_seed(9)
    cases = [  # (layers, batch, heads, tokens, rows sum to 1): batch ≠ heads so an average over the batch shows
        (3, 2, 3, 5, True),
        (1, 1, 4, 7, True),
        (4, 3, 2, 10, True),
        (2, 2, 4, 6, True),
        (3, 2, 3, 6, False),
    ]
    for layers, batch, heads, tokens, softmax_rows in cases:
        if softmax_rows:
            maps = _random_maps(layers, batch, heads, tokens, generator)
        else:
            maps = _dropout_maps(layers, batch, heads, tokens, generator)
        answer = _call_on_maps(candidate, maps)
        what = f"the rollout of {layers} layer(s) of (B, h, N, N) = {(batch, heads, tokens, tokens)} maps"
        if not softmax_rows:
            what += " whose rows do not sum to 1"
        answer = as_float32(expect_tensor(answer, what)).detach()
        if tuple(answer.shape) == (batch, tokens):
            raise Incorrect(
                f"{what} has shape (B, N): return the whole (B, N, N) rollout, not only the class token's row."
            )
        if tuple(answer.shape) == (batch, tokens - 1, tokens - 1):
            raise Incorrect(f"{what} has shape (B, N-1, N-1): keep every token, the class token included.")
        if tuple(answer.shape) == (heads, tokens, tokens):
            raise Incorrect(
                f"{what} has shape (h, N, N): you averaged over the batch (dim 0); average over the heads, "
                "attn.mean(dim=1), and keep one rollout per image, (B, N, N)."
            )
        if tuple(answer.shape) == (tokens, tokens):
            raise Incorrect(f"{what} has shape (N, N): keep one rollout per image, (B, N, N).")
        expect_tensor(answer, what, (batch, tokens, tokens))
        if not answer.is_floating_point():
            raise Incorrect(f"{what} has dtype {answer.dtype}, expected a floating-point tensor.")
        expected = reference_rollout(maps)
        if not torch.allclose(answer, expected, atol=1e-5, rtol=1e-4):
            hint = next(
                (
                    message
                    for message, guess in _rollout_guesses(maps).items()
                    if torch.allclose(answer, guess, atol=1e-5, rtol=1e-4)
                ),
                "check the formula: per layer Â = 0.5 * mean_heads(A) + 0.5 * I with rows renormalised to sum to "
                "1, then R = Â_L ⋯ Â_2 Â_1",
            )
            error = (answer - expected).abs().nan_to_num(0).max().item()
            raise Incorrect(f"{what} has the right shape but wrong values (max abs error {error:.3g}): {hint}.")


# -- 09.attention_distance --------------------------------------------------------------------------
def mean_attention_distance(maps, grid_size, patch_size, num_prefix_tokens=1):
    """Reference solution: mean attention distance in pixels, (L, h) (ViT paper, Fig. 7)."""
    import torch

    rows, cols = grid_size
    weights = torch.stack(list(maps))[..., num_prefix_tokens:, num_prefix_tokens:]  # (L, B, h, Np, Np) patches only
    weights = weights / weights.sum(dim=-1, keepdim=True)  # each query's weights over the patch keys sum to 1
    ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")  # (rows, cols) each
    centres = torch.stack([ys.flatten(), xs.flatten()], dim=-1) * float(patch_size)  # (Np, 2), row-major, pixels
    distances = (centres[:, None, :] - centres[None, :, :]).norm(dim=-1)  # (Np, Np) Euclidean, pixels
    per_query = (weights * distances.to(weights)).sum(dim=-1)  # (L, B, h, Np): expected distance per query
    return per_query.mean(dim=(1, 3))  # (L, h): averaged over images and queries


def _distance(
    maps,
    grid_size,
    patch_size,
    prefix,
    norm="euclidean",
    renormalise=True,
    layout="row-major",
    unit=True,
    reduce_queries="mean",
):
    """Mean attention distance with switches for the usual mistakes; ``prefix=None`` treats the
    prefix tokens as patches (all N tokens laid out on the grid in order)."""
    stacked = torch.stack(maps).double()  # (L, B, h, N, N)
    rows, cols = grid_size
    weights = stacked if prefix is None else stacked[..., prefix:, prefix:]
    if renormalise:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    index = torch.arange(weights.shape[-1])
    ys, xs = {
        "row-major": (index // cols, index % cols),
        "column-major": (index % rows, index // rows),  # the same distances as grid_size read as (cols, rows)
    }[layout]
    centres = torch.stack([ys, xs], dim=-1).double() * (patch_size if unit else 1)  # (Np, 2)
    offsets = centres[:, None] - centres[None, :]  # (Np, Np, 2)
    distances = {
        "euclidean": offsets.norm(dim=-1),
        "manhattan": offsets.abs().sum(-1),
        "squared": offsets.pow(2).sum(-1),
    }[norm]
    per_query = (weights * distances).sum(-1)  # (L, B, h, Np)
    per_query = per_query.sum(-1) if reduce_queries == "sum" else per_query.mean(-1)  # (L, B, h)
    return per_query.mean(1).float()  # (L, h)


def _distance_guesses(maps, grid_size, patch_size, prefix) -> dict[str, torch.Tensor]:
    def guess(**mistake):
        return _distance(maps, grid_size, patch_size, mistake.pop("prefix", prefix), **mistake)

    guesses = {
        "you used the Manhattan (|dy| + |dx|) distance; use the Euclidean one, sqrt(dy² + dx²)": guess(
            norm="manhattan"
        ),
        "you used the squared distance; take its square root, sqrt(dy² + dx²)": guess(norm="squared"),
        "the distance is in patches: multiply the patch positions by patch_size to get pixels": guess(unit=False),
        "the weights were not renormalised over the patch keys: after dropping the prefix tokens divide each "
        "query's weights by their sum, so they sum to 1 again": guess(renormalise=False),
        "the prefix (class) token was treated as a patch: drop the first num_prefix_tokens rows and columns of "
        "each map, they have no place on the grid": guess(prefix=None),
        "the prefix (class) token was treated as a patch and the weights not renormalised: drop the first "
        "num_prefix_tokens rows and columns, then divide each row by its sum": guess(prefix=None, renormalise=False),
        "the patches are laid out column by column, or the rows and columns of grid_size are swapped: grid_size = "
        "(rows, cols) and the patches are row-major, patch k sits at row k // cols, column k % cols": guess(
            layout="column-major"
        ),
        "you summed over the query patches; average over them (and over the images)": guess(reduce_queries="sum"),
    }
    if prefix != 1:  # the candidate dropped one token, whatever num_prefix_tokens said
        guesses["use num_prefix_tokens rather than assuming one class token (DeiT has two, some models none)"] = (
            _distance(maps, grid_size, patch_size, 1)
        )
    return guesses


def grade_attention_distance(candidate) -> None:
    generator = torch.Generator().manual_seed(90)
    cases = [  # (layers, batch, heads, grid, patch size, prefix): non-square grids, batch > 1, DeiT's two prefix tokens
        (2, 2, 3, (3, 4), 4, 1),
        (1, 1, 2, (2, 2), 16, 1),
        (3, 3, 4, (4, 3), 2, 1),
        (2, 2, 3, (2, 5), 8, 1),
        (2, 2, 3, (3, 3), 8, 2),
        (1, 2, 2, (2, 3), 4, 0),
    ]
    for layers, batch, heads, grid, patch_size, prefix in cases:
        tokens = prefix + grid[0] * grid[1]
        maps = _random_maps(layers, batch, heads, tokens, generator)
        what = (
            f"the distance for {layers} layer(s), {heads} heads, a {grid[0]}x{grid[1]} grid of {patch_size} px "
            f"patches and {prefix} prefix token(s)"
        )
        with prefix_tokens_case(prefix):
            answer = _call_on_maps(candidate, maps, grid, patch_size, prefix)
        answer = as_float32(expect_tensor(answer, what)).detach()
        if tuple(answer.shape) == (layers, batch, heads):
            raise Incorrect(f"{what} has shape (L, B, h): average over the images too, and return (L, h).")
        if tuple(answer.shape) == (heads, layers):
            raise Incorrect(f"{what} has shape (h, L): return one row per layer, (L, h).")
        expect_tensor(answer, what, (layers, heads))
        if not answer.is_floating_point():
            raise Incorrect(f"{what} has dtype {answer.dtype}, expected a floating-point tensor.")
        expected = reference_distance(maps, grid, patch_size, num_prefix_tokens=prefix)
        if not torch.allclose(answer, expected, atol=1e-4, rtol=1e-4):
            hint = next(
                (
                    message
                    for message, guess in _distance_guesses(maps, grid, patch_size, prefix).items()
                    if torch.allclose(answer, guess, atol=1e-4, rtol=1e-4)
                ),
                "",
            )
            hint = hint or (
                "for each patch query, sum its renormalised weights over the patch keys times the Euclidean "
                "distance between patch centres in pixels; then average over queries and images"
            )
            error = (answer - expected).abs().nan_to_num(0).max().item()
            raise Incorrect(f"{what} has the right shape but wrong values (max abs error {error:.3g}): {hint}.")


register(
    Exercise(
        id="09.attention_rollout",
        title="Attention rollout",
        grader=grade_rollout,
        solution_obj=rollout_maps,
        hint_text=(
            "Start from R = torch.eye(N) (expanded to (B, N, N)). For each layer, first to last: A = attn.mean(dim=1) "
            "(B, N, N); Â = 0.5 * A + 0.5 * I; Â = Â / Â.sum(dim=-1, keepdim=True); R = Â @ R (the newer layer "
            "on the left). Return R."
        ),
    )
)

register(
    Exercise(
        id="09.attention_distance",
        title="Mean attention distance",
        grader=grade_attention_distance,
        solution_obj=mean_attention_distance,
        hint_text=(
            "Stack the maps to (L, B, h, N, N) and keep [..., p:, p:] with p = num_prefix_tokens; divide each row by "
            "its sum. Patch k sits at row k // cols, column k % cols: centres = (row, col) * patch_size, shape "
            "(Np, 2); distances = torch.cdist(centres, centres) (Np, Np). Then (weights * distances).sum(-1) is "
            "(L, B, h, Np); average over dims (1, 3)."
        ),
    )
)
