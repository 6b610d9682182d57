"""Bug zoo for 09.attention_rollout and 09.attention_distance (run by test_zoos.py); rollouts and distances
written in other styles (einsum, loops, float64, cdist) are accepted."""

import functools

import pytest
import torch

from vit_lessons.exercises import get_exercise
from vit_lessons.interpret import attention_distance, attention_rollout


# -- 09.attention_rollout ---------------------------------------------------------------------------
def _rollout(maps, fuse="mean", residual=True, normalise=-1, newest_left=True):
    """A rollout with switches for the usual mistakes."""
    N = maps[0].shape[-1]
    eye = torch.eye(N)
    result = eye.expand(maps[0].shape[0], N, N)
    for attn in maps:
        fused = {"mean": attn.mean(1), "max": attn.amax(1), "sum": attn.sum(1)}[fuse]
        mixed = 0.5 * fused + 0.5 * eye if residual else fused
        if normalise is not None:
            mixed = mixed / mixed.sum(normalise, keepdim=True)
        result = mixed @ result if newest_left else result @ mixed
    return result


def _rollout_bug(name, **mistake):
    def candidate(maps):
        return _rollout(maps, **mistake)

    candidate.__name__ = name
    return candidate


def rollout_per_head(maps):
    heads = maps[0].shape[1]
    return torch.stack([_rollout([attn[:, h : h + 1] for attn in maps]) for h in range(heads)]).mean(0)


def rollout_elementwise(maps):
    eye = torch.eye(maps[0].shape[-1])
    result = eye.expand(maps[0].shape[0], -1, -1)
    for attn in maps:
        mixed = 0.5 * attn.mean(1) + 0.5 * eye
        result = mixed / mixed.sum(-1, keepdim=True) * result
    return result


def rollout_last_layer_only(maps):
    return _rollout(maps[-1:])


def rollout_skips_first_layer(maps):
    return _rollout(maps[1:]) if len(maps) > 1 else _rollout(maps)


def rollout_transposed(maps):
    return _rollout(maps).transpose(-2, -1)


def rollout_class_row_only(maps):
    return _rollout(maps)[:, 0]


def rollout_drops_class_token(maps):
    return _rollout([attn[..., 1:, 1:] for attn in maps])


def rollout_mean_over_batch(maps):
    return _rollout([attn.transpose(0, 1) for attn in maps])  # averages dim 1, the batch after the transpose


def rollout_in_place(maps):
    for attn in maps:
        attn.mul_(1.0)
        attn[0, 0, 0, 0] += 0.1
    return _rollout(maps)


def rollout_returns_list(maps):
    return _rollout(maps).tolist()


ROLLOUT_BUGS = {
    _rollout_bug("no_identity", residual=False): "identity \\(residual\\) term is missing",
    _rollout_bug("no_identity_no_renormalisation", residual=False, normalise=None): "identity .*term is missing",
    _rollout_bug("wrong_order", newest_left=False): "wrong order",
    _rollout_bug("no_renormalisation", normalise=None): "rows are not renormalised.*dropout",
    _rollout_bug("renormalise_columns", normalise=-2): "renormalised the columns",
    _rollout_bug("max_over_heads", fuse="max"): "max over the heads; average",
    _rollout_bug("max_over_heads_no_renormalisation", fuse="max", normalise=None): "max over the heads and did not",
    _rollout_bug("sum_over_heads", fuse="sum"): "summed over the heads",
    rollout_per_head: "each head on its own",
    rollout_elementwise: "elementwise",
    rollout_last_layer_only: "only the last layer",
    rollout_skips_first_layer: "first layer is left out",
    rollout_transposed: "transposed",
    rollout_class_row_only: "shape \\(B, N\\)",
    rollout_drops_class_token: "class token included",
    rollout_mean_over_batch: "averaged over the batch",
    rollout_in_place: "in place",
    rollout_returns_list: "should be a torch.Tensor",
}


def rollout_einsum(maps):
    N = maps[0].shape[-1]
    result = torch.eye(N).repeat(maps[0].shape[0], 1, 1)
    for attn in maps:
        mixed = torch.einsum("bhqk->bqk", attn) / attn.shape[1] + torch.eye(N)  # A + I: the halves cancel
        mixed = mixed / mixed.sum(-1, keepdim=True)
        result = torch.einsum("bij,bjk->bik", mixed, result)
    return result


def rollout_loops_float64(maps):
    out = []
    for b in range(maps[0].shape[0]):
        layers = []
        for attn in maps:
            a = attn[b].double().mean(0)
            a = (a + torch.eye(a.shape[0], dtype=torch.float64)) / 2
            layers.append(a / a.sum(1, keepdim=True))
        out.append(functools.reduce(lambda acc, layer: layer @ acc, layers))
    return torch.stack(out)


def rollout_multi_dot(maps):
    stacked = torch.stack(maps).mean(2)  # (L, B, N, N)
    mixed = 0.5 * stacked + 0.5 * torch.eye(stacked.shape[-1])
    mixed = mixed / mixed.sum(-1, keepdim=True)
    if len(maps) == 1:
        return mixed[0]
    return torch.stack([torch.linalg.multi_dot(list(mixed[:, b].flip(0))) for b in range(stacked.shape[1])])


@pytest.mark.parametrize(
    "candidate",
    [rollout_einsum, rollout_loops_float64, rollout_multi_dot, attention_rollout],
    ids=["einsum", "loops_float64", "multi_dot", "package"],
)
def test_rollout_in_other_styles_is_correct(candidate):
    result = get_exercise("09.attention_rollout").grade(candidate)
    assert result.status == "correct", result


# -- 09.attention_distance --------------------------------------------------------------------------
def _distance(
    maps,
    grid_size,
    patch_size,
    num_prefix_tokens=1,
    *,
    prefix=None,
    norm="euclidean",
    renormalise=True,
    layout="row-major",
    pixels=True,
    reduce="mean",
):
    """A mean attention distance with switches for the usual mistakes (``prefix``: overrides the argument)."""
    p = num_prefix_tokens if prefix is None else prefix
    rows, cols = grid_size
    weights = torch.stack(maps)[..., p:, p:] if p != "keep" else torch.stack(maps)
    if renormalise:
        weights = weights / weights.sum(-1, keepdim=True)
    k = torch.arange(weights.shape[-1])
    ys, xs = {
        "row-major": (k // cols, k % cols),
        "column-major": (k % rows, k // rows),
        "swapped": (k // rows, k % rows),
    }[layout]
    centres = torch.stack([ys, xs], -1).float() * (patch_size if pixels else 1)
    offsets = centres[:, None] - centres[None]
    distances = {
        "euclidean": offsets.norm(dim=-1),
        "manhattan": offsets.abs().sum(-1),
        "squared": offsets.pow(2).sum(-1),
    }[norm]
    per_query = (weights * distances).sum(-1)  # (L, B, h, Np)
    if reduce == "per_image":
        return per_query.mean(-1)
    return per_query.sum(-1).mean(1) if reduce == "sum" else per_query.mean(dim=(1, 3))


def _distance_bug(name, **mistake):
    def candidate(maps, grid_size, patch_size, num_prefix_tokens=1):
        return _distance(maps, grid_size, patch_size, num_prefix_tokens, **mistake)

    candidate.__name__ = name
    return candidate


def distance_hard_coded_prefix(maps, grid_size, patch_size, num_prefix_tokens=1):
    rows, cols = grid_size
    weights = torch.stack(maps)[..., 1:, 1:]
    weights = weights / weights.sum(-1, keepdim=True)
    ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    centres = torch.stack([ys.flatten(), xs.flatten()], -1).float() * patch_size
    return (weights * torch.cdist(centres, centres)).sum(-1).mean(dim=(1, 3))


def distance_transposed(maps, grid_size, patch_size, num_prefix_tokens=1):
    return _distance(maps, grid_size, patch_size, num_prefix_tokens).T


def distance_in_place(maps, grid_size, patch_size, num_prefix_tokens=1):
    for attn in maps:
        attn[..., :num_prefix_tokens] = 0
    return _distance(maps, grid_size, patch_size, num_prefix_tokens)


DISTANCE_BUGS = {
    _distance_bug("manhattan", norm="manhattan"): "Manhattan",
    _distance_bug("squared", norm="squared"): "squared distance",
    _distance_bug("in_patches", pixels=False): "distance is in patches",
    _distance_bug("no_renormalisation", renormalise=False): "not renormalised over the patch keys",
    _distance_bug("prefix_as_patch", prefix="keep", renormalise=False): "treated as a patch",
    _distance_bug("prefix_as_patch_renormalised", prefix="keep"): "treated as a patch",
    _distance_bug("column_major", layout="column-major"): "column by column",
    _distance_bug("swapped_grid", layout="swapped"): "rows and columns of grid_size are swapped",
    _distance_bug("sum_over_queries", reduce="sum"): "summed over the query patches",
    _distance_bug("per_image", reduce="per_image"): "average over the images too",
    _distance_bug("assumes_one_prefix_token", prefix=1): "assuming one class token",
    distance_hard_coded_prefix: "num_prefix_tokens=2 your code raised.*assuming one class token",
    distance_transposed: "shape \\(h, L\\)",
    distance_in_place: "in place",
}

ZOO = {"09.attention_rollout": ROLLOUT_BUGS, "09.attention_distance": DISTANCE_BUGS}


def distance_loops_float64(maps, grid_size, patch_size, num_prefix_tokens=1):
    rows, cols = grid_size
    p = num_prefix_tokens
    L, (B, h, _, _) = len(maps), maps[0].shape
    out = torch.zeros(L, h, dtype=torch.float64)
    for layer in range(L):
        for head in range(h):
            total = 0.0
            for b in range(B):
                for q in range(rows * cols):
                    w = maps[layer][b, head, p + q, p:].double()
                    w = w / w.sum()
                    for k in range(rows * cols):
                        dy, dx = (q // cols - k // cols) * patch_size, (q % cols - k % cols) * patch_size
                        total += w[k].item() * (dy * dy + dx * dx) ** 0.5
            out[layer, head] = total / (B * rows * cols)
    return out


def distance_true_centres_xy(maps, grid_size, patch_size, num_prefix_tokens=1):
    rows, cols = grid_size
    xs, ys = torch.meshgrid(torch.arange(cols), torch.arange(rows), indexing="xy")  # (rows, cols) each
    centres = (torch.stack([xs.flatten(), ys.flatten()], -1) + 0.5) * patch_size  # (x, y) centres in pixels
    weights = torch.stack(maps)[..., num_prefix_tokens:, num_prefix_tokens:]
    weights = weights / weights.sum(-1, keepdim=True)
    distances = torch.cdist(centres.double(), centres.double()).float()
    return torch.einsum("lbhqk,qk->lh", weights, distances) / (weights.shape[1] * weights.shape[3])


@pytest.mark.parametrize(
    "candidate", [distance_loops_float64, distance_true_centres_xy, attention_distance], ids=["loops", "xy", "package"]
)
def test_distance_in_other_styles_is_correct(candidate):
    result = get_exercise("09.attention_distance").grade(candidate)
    assert result.status == "correct", result


def test_the_written_out_helpers_are_correct_without_a_mistake():
    assert get_exercise("09.attention_rollout").grade(_rollout).status == "correct"
    assert get_exercise("09.attention_distance").grade(_distance).status == "correct"
