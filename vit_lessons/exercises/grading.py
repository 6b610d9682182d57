"""Helpers graders share: compare a candidate's output with the reference, with messages a
student can act on."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

__all__ = [
    "Incorrect",
    "as_count",
    "as_float32",
    "expect_tensor",
    "expect_close",
    "copy_weights",
    "randomize_parameters",
    "module_with_reference_weights",
    "compare_token_outputs",
]


class Incorrect(Exception):
    """Raised by a grader: the candidate is wrong, and the message says how."""


def as_count(answer, what: str = "the count") -> int:
    """A whole number from any of the types a correct answer may come in: int, a NumPy integer, a whole
    float (``D * D / 1``), a one-element tensor. Anything else is :class:`Incorrect`, saying why."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        raise Incorrect(f"return {what} as a number (an int), got {type(answer).__name__} ({answer!r}).")
    if isinstance(answer, numbers.Integral):
        return int(answer)
    if not math.isfinite(answer) or answer != int(answer):
        raise Incorrect(f"{what} must be a whole number, got {answer!r}; a parameter count has no fractions.")
    return int(answer)


def as_float32(value):
    """A floating-point tensor in the references' dtype: an answer computed in float64 (or bf16) is
    compared by value, not rejected for its dtype. Anything else is returned as it is."""
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


def expect_tensor(value, what: str, shape: tuple | None = None) -> torch.Tensor:
    """``value`` must be a tensor (of ``shape`` when given)."""
    if not isinstance(value, torch.Tensor):
        raise Incorrect(f"{what} should be a torch.Tensor, got {type(value).__name__}.")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Incorrect(f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}.")
    return value


def expect_close(
    actual, expected: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4, hint: str = ""
) -> None:
    """``actual`` must be a tensor of ``expected``'s shape and values (to the tolerances)."""
    actual = expect_tensor(actual, what, tuple(expected.shape))
    if not actual.is_floating_point() and expected.is_floating_point():
        raise Incorrect(f"{what} has dtype {actual.dtype}, expected a floating-point tensor.")
    actual = actual.detach().to(expected.dtype)
    if torch.isnan(actual).any() and not torch.isnan(expected).any():
        raise Incorrect(f"{what} contains NaN. {hint}".strip())
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True):
        error = (actual - expected).abs().nan_to_num(0).max().item()
        raise Incorrect(f"{what} has the right shape but wrong values (max abs error {error:.3g}). {hint}".strip())


def copy_weights(source: torch.nn.Module, target: torch.nn.Module, what: str) -> None:
    """Load ``source``'s state dict into ``target``, explaining missing or extra parameter names."""
    src = source.state_dict()
    dst = target.state_dict()
    missing = sorted(set(src) - set(dst))
    extra = sorted(set(dst) - set(src))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing parameters {missing}")
        if extra:
            parts.append(f"unexpected parameters {extra}")
        raise Incorrect(f"{what}: {'; '.join(parts)}. Use the parameter names given in the exercise.")
    for key, value in src.items():
        if tuple(dst[key].shape) != tuple(value.shape):
            raise Incorrect(
                f"{what}: parameter {key} has shape {tuple(dst[key].shape)}, expected {tuple(value.shape)}."
            )
    target.load_state_dict(src)


def compare_token_outputs(
    module, reference, tokens, setting: str, where: str, diagnose, fallback_hint: str, in_place_fix: str, atol: float
) -> None:
    """Run a candidate ``module`` and its ``reference`` on (B, N, D) ``tokens``: the candidate must not
    change its input, and must give the reference's shape and values. ``diagnose(reference, tokens,
    out)`` names the usual mistake behind a wrong output (or returns '')."""
    before = tokens.clone()
    with torch.no_grad():
        out = module(tokens)
        expected = reference(tokens)
    if not torch.equal(tokens, before):
        raise Incorrect(f"your forward changed its input tokens in place; {in_place_fix}")
    out = expect_tensor(out, f"the output for {setting}")
    if tuple(out.shape) != tuple(expected.shape):
        raise Incorrect(
            f"the output for {setting} has shape {tuple(out.shape)}, expected (B, N, D) = {tuple(expected.shape)}."
        )
    out = out.detach().float()
    if not torch.allclose(out, expected, atol=atol, rtol=1e-4):
        with torch.no_grad():
            hint = diagnose(reference, tokens, out)
        error = (out - expected).abs().max().item()
        raise Incorrect(f"wrong output for {where} (max abs error {error:.3g}): {hint or fallback_hint}.")


def randomize_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Overwrite every parameter with random values (norm weights around 1, everything else
    around 0 with a fan-in scale), so that no mistake hides behind a default initialisation."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim >= 2:
                param.copy_(noise / math.sqrt(param.shape[-1]))
            elif "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.5 * noise)
            else:
                param.copy_(0.5 * noise)


def module_with_reference_weights(
    candidate, reference: nn.Module, args: tuple, kwargs: dict, check_parameters, generator: torch.Generator
) -> nn.Module:
    """Instantiate the candidate class with ``args``/``kwargs``, check its parameters with
    ``check_parameters(module, *args, *kwargs.values())``, and give it the randomised weights of ``reference`` (which is
    randomised in place). Both are returned in eval mode; the candidate is returned."""
    module = candidate(*args, **kwargs)
    if not isinstance(module, nn.Module):
        raise Incorrect(f"{candidate.__name__}(...) should be an nn.Module, got {type(module).__name__}.")
    check_parameters(module, *args, *kwargs.values())
    randomize_parameters(reference, generator)
    module.load_state_dict(reference.state_dict(), strict=False)  # parameters checked above; extra buffers are fine
    module.eval()
    reference.eval()
    return module
