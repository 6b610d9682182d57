"""Bug zoo for 12.resample_position_embedding (run by test_zoos.py); a written-out resampling and timm's
agree with the reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("12.resample_position_embedding")


def _resample(
    pos_embed,
    new_grid,
    num_prefix_tokens=1,
    *,
    mode="bicubic",
    antialias=True,
    order=(0, 3, 1, 2),
    keep_prefix=True,
    prefix_count=None,
    scramble=False,
):
    """A written-out resampling with switches for the usual mistakes."""
    prefix_count = num_prefix_tokens if prefix_count is None else prefix_count
    prefix, grid = pos_embed[:, :prefix_count], pos_embed[:, prefix_count:]
    side = math.isqrt(grid.shape[1])
    dim = grid.shape[-1]
    if scramble:
        image = grid.reshape(1, dim, side, side)
    else:
        image = grid.reshape(1, side, side, dim).permute(*order)
    image = F.interpolate(image, size=tuple(new_grid), mode=mode, antialias=antialias)
    flat = image.reshape(1, dim, -1).transpose(1, 2) if scramble else image.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([prefix, flat], dim=1) if keep_prefix else flat


def _bug(name, **mistake):
    def candidate(pos_embed, new_grid, num_prefix_tokens=1):
        return _resample(pos_embed, new_grid, num_prefix_tokens, **mistake)

    candidate.__name__ = name
    return candidate


def assumes_one_prefix(pos_embed, new_grid, num_prefix_tokens=1):
    return _resample(pos_embed, new_grid, num_prefix_tokens, prefix_count=1)  # ignores its argument


def prefix_scaled(pos_embed, new_grid, num_prefix_tokens=1):
    out = _resample(pos_embed, new_grid, num_prefix_tokens).clone()
    out[:, :num_prefix_tokens] *= 0.5
    return out


def in_place(pos_embed, new_grid, num_prefix_tokens=1):
    out = _resample(pos_embed, new_grid, num_prefix_tokens)
    pos_embed.mul_(1.0)
    pos_embed[0, 0, 0] += 1
    return out


def returns_list(pos_embed, new_grid, num_prefix_tokens=1):
    return _resample(pos_embed, new_grid, num_prefix_tokens).tolist()


ZOO = {
    "12.resample_position_embedding": {
        _bug("bilinear", mode="bilinear"): "bilinear",
        _bug("no_antialias", antialias=False): "antialias=True",
        _bug("transposed_grid", order=(0, 3, 2, 1)): "grid is transposed",
        _bug("drops_prefix", keep_prefix=False): "prefix \\(class\\) token's embedding was dropped",
        _bug("reshape_without_permute", scramble=True): "mixes features and positions",
        assumes_one_prefix: "num_prefix_tokens=0 your code raised.*rather than assuming one class token",
        prefix_scaled: "prefix \\(class\\) token's embedding changed",
        in_place: "in place",
        returns_list: "should be a torch.Tensor",
    }
}


def test_written_out_resampling_is_correct(ex):
    assert ex.grade(_resample).status == "correct"


def test_reference_equals_timm():
    timm_pos = pytest.importorskip("timm.layers")
    namespace = {}
    exec(get_exercise("12.resample_position_embedding").solution_source("mine"), namespace)
    pos_embed = torch.randn(1, 1 + 14 * 14, 16)
    for grid in [(24, 24), (8, 8), (6, 10)]:
        expected = timm_pos.resample_abs_pos_embed(pos_embed, list(grid), num_prefix_tokens=1)
        torch.testing.assert_close(namespace["mine"](pos_embed, grid, 1), expected, atol=1e-5, rtol=0)


def test_exact_values_computed_in_float64_are_correct():
    from vit_lessons.position import resample_position_embedding

    def in_float64(pos_embed, new_grid, num_prefix_tokens=1):
        return resample_position_embedding(pos_embed.double(), new_grid, num_prefix_tokens=num_prefix_tokens)

    assert get_exercise("12.resample_position_embedding").grade(in_float64).status == "correct"
