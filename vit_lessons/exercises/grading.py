"""Helpers graders share: compare a candidate's output with the reference, with messages a
student can act on."""

from __future__ import annotations

import ast
import contextlib
import inspect
import linecache
import math
import numbers
import os
import sysconfig
import textwrap
import types

import torch
from torch import nn

__all__ = [
    "prefix_tokens_case",
    "Incorrect",
    "as_count",
    "as_float32",
    "expect_tensor",
    "expect_close",
    "copy_weights",
    "randomize_parameters",
    "module_with_reference_weights",
    "compare_token_outputs",
    "is_untouched_stub",
    "unimplemented_branch_message",
]


class Incorrect(Exception):
    """Raised by a grader: the candidate is wrong, and the message says how."""


@contextlib.contextmanager
def prefix_tokens_case(num_prefix_tokens: int):
    """Grade one case with ``num_prefix_tokens`` prefix tokens: an error the code raises only when the
    count is not one (the one-class-token cases run first) means it assumed a single class token."""
    try:
        yield
    except (NotImplementedError, Incorrect):
        raise
    except Exception as error:
        if num_prefix_tokens == 1:
            raise
        raise Incorrect(
            f"with num_prefix_tokens={num_prefix_tokens} your code raised {type(error).__name__}: {error}. "
            "Use num_prefix_tokens rather than assuming one class token (DeiT has two, some models none)."
        ) from error


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
    """Load ``source``'s state dict into ``target``, explaining missing or extra parameter names. Extra
    buffers in ``target`` are fine (as in :func:`module_with_reference_weights`): they are not weights."""
    src = source.state_dict()
    dst = target.state_dict()
    target_buffers = {name for name, _ in target.named_buffers()}
    missing = sorted(set(src) - set(dst))
    extra = sorted(set(dst) - set(src) - target_buffers)
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
    target.load_state_dict(src, strict=False)  # names checked above; the target's extra buffers stay as they are


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


# -- NotImplementedError: the untouched stub, or a branch not written yet ------------------------------------


def _is_not_implemented(node: ast.expr | None) -> bool:
    """``NotImplementedError`` or ``NotImplementedError(...)`` (also ``builtins.NotImplementedError``)."""
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Name) and node.id == "NotImplementedError") or (
        isinstance(node, ast.Attribute) and node.attr == "NotImplementedError"
    )


def _is_super_init(statement: ast.stmt) -> bool:
    call = statement.value if isinstance(statement, ast.Expr) else None
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "__init__"
        and isinstance(call.func.value, ast.Call)
        and isinstance(call.func.value.func, ast.Name)
        and call.func.value.func.id == "super"
    )


def _function_is_stub(function) -> bool | None:
    """Whether the body of ``function`` is only ``raise NotImplementedError``, with at most a docstring, other
    constants, ``pass`` and ``super().__init__()`` around it (comments are invisible). None: no source."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):  # no file (exec'd code), or a partial snippet
        return None
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False  # a lambda (which cannot raise by itself) or something unexpected
    raises = False
    for statement in definition.body:
        if isinstance(statement, ast.Raise) and _is_not_implemented(statement.exc):
            raises = True
        elif not (
            isinstance(statement, ast.Pass)
            or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
            or _is_super_init(statement)
        ):
            return False
    return raises


def _user_classes(candidate: type) -> list[type]:
    """``candidate`` and the bases it inherits code from that are not torch's or Python's own."""
    return [c for c in candidate.__mro__ if c.__module__.split(".")[0] not in ("builtins", "torch")]


def _own_functions(candidate) -> list:
    """The Python functions an answer consists of: the function itself, or the methods its class (and its
    bases other than torch's) define."""
    if isinstance(candidate, type):
        functions = []
        for owner in _user_classes(candidate):
            for value in vars(owner).values():
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                elif isinstance(value, property):
                    functions.extend(f for f in (value.fget, value.fset, value.fdel) if f is not None)
                    continue
                if isinstance(value, types.FunctionType):
                    functions.append(value)
        return functions
    function = inspect.unwrap(candidate) if callable(candidate) else None
    if isinstance(function, types.MethodType):
        function = function.__func__
    return [function] if isinstance(function, types.FunctionType) else []


def is_untouched_stub(candidate) -> bool | None:
    """Whether ``candidate`` is still the exercise's stub: a function whose body is only ``raise
    NotImplementedError`` (perhaps with a docstring, comments or ``pass``), or a class whose every method is
    (``super().__init__()`` allowed). None when the source cannot be read (e.g. code exec'd from a string);
    methods are read one by one, so a class defined in a notebook cell works too."""
    functions = _own_functions(candidate)
    if not functions:
        return None
    verdicts = [_function_is_stub(function) for function in functions]
    if None in verdicts:
        return None
    return all(verdicts)


def _code_objects(code: types.CodeType) -> set:
    """``code`` and the code of the functions, lambdas and comprehensions defined inside it."""
    codes = {code}
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            codes |= _code_objects(constant)
    return codes


def _candidate_codes(candidate) -> set:
    codes = set()
    for function in _own_functions(candidate):
        codes |= _code_objects(function.__code__)
    return codes


def unimplemented_branch_message(candidate, error: NotImplementedError) -> str | None:
    """What to tell a student whose answer raised ``error``; None means "not attempted".

    Not attempted: the grader raised it itself (its way of saying "no answer yet"), or ``candidate`` is the
    untouched stub, or its source cannot be read (then, as before, any NotImplementedError counts as not
    attempted). Otherwise the answer is partly written and reached a ``raise NotImplementedError`` (a
    branch not written yet), or called something that raised it: incorrect, and the message says where."""
    traceback = error.__traceback__
    if traceback is None:
        return None
    while traceback.tb_next is not None:  # to the frame that raised it
        traceback = traceback.tb_next
    raiser, line_number = traceback.tb_frame, traceback.tb_lineno
    if raiser.f_globals.get("__name__", "").startswith(__package__ or "vit_lessons.exercises"):
        return None  # the grader's own signal (e.g. an answer of None)
    if is_untouched_stub(candidate) is not False:
        return None
    line = linecache.getline(raiser.f_code.co_filename, line_number, raiser.f_globals).strip()
    own_raise = line.startswith("raise") or (not line and raiser.f_code in _candidate_codes(candidate))
    if own_raise and not _is_library_code(raiser.f_code.co_filename):
        shown = f" (`{line}`)" if line else ""
        detail = f" ({error})" if str(error) and str(error) not in line else ""
        return (
            f"Your code reached an unimplemented branch: line {line_number} of {raiser.f_code.co_name}{shown} "
            f"raised NotImplementedError{detail}. Write that part too: the checks run it."
        )
    return f"Your code raised NotImplementedError: {error}".strip()  # e.g. torch's, for an operation it lacks


def _is_library_code(filename: str) -> bool:
    """Python's own modules and installed packages (torch, numpy): not a student's code."""
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    filename = os.path.realpath(filename) if os.path.isabs(filename) else filename
    return any(filename.startswith(root + os.sep) for root in roots)
