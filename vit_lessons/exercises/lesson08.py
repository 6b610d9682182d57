"""Lesson 08 exercises: the learning-rate schedule and the weight-decay groups of the training loop,
graded against :func:`vit_lessons.train.trainer.warmup_cosine` and :func:`vit_lessons.train.trainer.param_groups`."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ..deit import DistilledVisionTransformer
from ..train.trainer import param_groups, warmup_cosine
from ..vit import VisionTransformer
from . import Exercise, register
from .grading import Incorrect, as_float32

# ---------------------------------------------------------------------------------------------------
# 08.warmup_cosine


def lr_factor(step, total_steps, warmup_steps, min_ratio):
    """Reference solution: the learning-rate multiplier at ``step`` (counted from 0): a linear warm-up
    to 1 over ``warmup_steps`` steps, then a cosine from 1 down to ``min_ratio`` at ``total_steps``,
    held there after."""
    import math

    if step < warmup_steps:
        return (step + 1) / warmup_steps  # 1/warmup_steps at step 0 (it already trains), 1 at warmup_steps - 1
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))  # 0 → 1 after warm-up, held
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# (total_steps, warmup_steps, min_ratio): a long warm-up, min_ratio 0, a one-step warm-up, a high floor
_SCHEDULES = [(100, 10, 0.1), (37, 5, 0.0), (20, 1, 0.25), (64, 16, 0.5)]
_BEYOND = 6  # steps probed past total_steps (plus one far beyond)


def _steps(total_steps: int) -> list[int]:
    return list(range(total_steps + _BEYOND)) + [3 * total_steps]


def _as_number(value, where: str) -> float:
    """A float from a Python number, a NumPy scalar or a one-element tensor (any float dtype)."""
    if callable(value):
        raise Incorrect(
            f"{where} you returned a function: return the factor itself, a number (warmup_cosine(...) is the one "
            "that returns a function of the step)."
        )
    value = as_float32(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Incorrect(f"{where} return the factor as a number (a float), got {type(value).__name__} ({value!r}).")
    value = float(value)
    if not math.isfinite(value):
        raise Incorrect(f"{where} the factor is {value}: guard the divisions (warm-up and cosine lengths are >= 1).")
    return value


def _close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= 1e-6 + 1e-5 * abs(expected)


def _cosine(progress: float, min_ratio: float) -> float:
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _progress(step, total_steps, warmup_steps) -> float:
    return min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))


def _after_warmup(decay):
    """A schedule with the reference warm-up and ``decay(step, total, warmup, min_ratio)`` after it."""

    def schedule(step, total, warmup, min_ratio):
        return (step + 1) / warmup if step < warmup else decay(step, total, warmup, min_ratio)

    return schedule


def _usual_mistakes() -> dict:
    """What each typical mistake returns, message → schedule(step, total, warmup, min_ratio)."""

    def reference(step, total, warmup, min_ratio):
        return warmup_cosine(total, warmup, min_ratio)(step)

    def warmup_from_zero(step, total, warmup, min_ratio):
        return step / warmup if step < warmup else reference(step, total, warmup, min_ratio)

    def warmup_one_step_long(step, total, warmup, min_ratio):
        return (step + 1) / warmup if step <= warmup else reference(step, total, warmup, min_ratio)

    def warmup_over_warmup_plus_one(step, total, warmup, min_ratio):
        return (step + 1) / (warmup + 1) if step < warmup else reference(step, total, warmup, min_ratio)

    return {
        "the warm-up starts at 0: step 0 already trains, so the factor is (step + 1) / warmup_steps "
        "(1 / warmup_steps at step 0, exactly 1 at step warmup_steps - 1)": warmup_from_zero,
        "the warm-up runs one step too long (step <= warmup_steps): warm up while step < warmup_steps; "
        "at step warmup_steps the cosine starts, at 1": warmup_one_step_long,
        "the warm-up never reaches 1: divide (step + 1) by warmup_steps, not warmup_steps + 1": (
            warmup_over_warmup_plus_one
        ),
        "the cosine goes down to 0 instead of min_ratio: min_ratio + (1 - min_ratio) · 0.5 · (1 + cos(π · progress))": (
            _after_warmup(lambda s, t, w, m: 0.5 * (1 + math.cos(math.pi * _progress(s, t, w))))
        ),
        "the cosine starts at 1 + min_ratio: scale it by (1 - min_ratio) before adding min_ratio, "
        "min_ratio + (1 - min_ratio) · 0.5 · (1 + cos(π · progress))": (
            _after_warmup(lambda s, t, w, m: m + 0.5 * (1 + math.cos(math.pi * _progress(s, t, w))))
        ),
        "you cut the cosine off at min_ratio (max(min_ratio, ...)); squeeze it instead: "
        "min_ratio + (1 - min_ratio) · 0.5 · (1 + cos(π · progress))": (
            _after_warmup(lambda s, t, w, m: max(m, 0.5 * (1 + math.cos(math.pi * _progress(s, t, w)))))
        ),
        "the cosine is measured from step 0, so it has already fallen when the warm-up ends: use "
        "progress = (step - warmup_steps) / (total_steps - warmup_steps)": (
            _after_warmup(lambda s, t, w, m: _cosine(min(1.0, s / t), m))
        ),
        "the cosine does not reach min_ratio at total_steps: progress = (step - warmup_steps) / (total_steps - "
        "warmup_steps) must be 1 there (you divided by total_steps)": (
            _after_warmup(lambda s, t, w, m: _cosine(min(1.0, (s - w) / t), m))
        ),
        "the cosine reaches min_ratio one step early: divide by total_steps - warmup_steps, not "
        "total_steps - warmup_steps - 1": (
            _after_warmup(lambda s, t, w, m: _cosine(min(1.0, (s - w) / max(1, t - w - 1)), m))
        ),
        "no clamp after total_steps: the cosine rises again; hold progress at 1 with min(1.0, ...) so the "
        "factor stays at min_ratio": (_after_warmup(lambda s, t, w, m: _cosine((s - w) / max(1, t - w), m))),
        "you used 1 - cos, which rises from min_ratio to 1; the factor falls from 1 after the warm-up to "
        "min_ratio: 0.5 · (1 + cos(π · progress))": (
            _after_warmup(lambda s, t, w, m: m + (1 - m) * 0.5 * (1 - math.cos(math.pi * _progress(s, t, w))))
        ),
        "math.cos takes radians: the half period is math.pi, not 180 (degrees)": (
            _after_warmup(lambda s, t, w, m: m + (1 - m) * 0.5 * (1 + math.cos(180 * _progress(s, t, w))))
        ),
        "math.pi · progress is already in radians: converting it again (math.radians, or · π / 180) makes the "
        "angle 57 times too small": (
            _after_warmup(lambda s, t, w, m: _cosine(math.radians(math.pi * _progress(s, t, w)) / math.pi, m))
        ),
        "π is missing: cos(progress) only falls to cos(1); use cos(math.pi * progress), half a period": (
            _after_warmup(lambda s, t, w, m: m + (1 - m) * 0.5 * (1 + math.cos(_progress(s, t, w))))
        ),
        "cos(2π · progress) is a whole period, which comes back up to 1 at the end; use half a period, "
        "cos(π · progress)": (_after_warmup(lambda s, t, w, m: _cosine(2 * _progress(s, t, w), m))),
        "the decay is linear; it should follow the cosine 0.5 · (1 + cos(π · progress))": (
            _after_warmup(lambda s, t, w, m: m + (1 - m) * (1 - _progress(s, t, w)))
        ),
    }


_PHASES = (
    ("warm-up", "during the warm-up the factor rises linearly, (step + 1) / warmup_steps"),
    (
        "cosine",
        "after the warm-up, progress = (step - warmup_steps) / (total_steps - warmup_steps) and the factor is "
        "min_ratio + (1 - min_ratio) · 0.5 · (1 + cos(π · progress))",
    ),
    ("after total_steps", "after total_steps the factor stays at min_ratio"),
)


def _phase(step: int, total_steps: int, warmup_steps: int) -> str:
    if step < warmup_steps:
        return "warm-up"
    return "cosine" if step <= total_steps else "after total_steps"


def grade_lr_factor(candidate) -> None:
    answers = {}  # (schedule, step) → the candidate's factor
    for total, warmup, min_ratio in _SCHEDULES:
        for step in _steps(total):
            where = f"at step {step} (total_steps={total}, warmup_steps={warmup}, min_ratio={min_ratio})"
            try:
                value = candidate(step, total, warmup, min_ratio)
            except (NotImplementedError, Incorrect):
                raise
            except Exception as error:
                raise Incorrect(f"{where} your code raised {type(error).__name__}: {error}".strip()) from error
            answers[(total, warmup, min_ratio), step] = _as_number(value, where + ":")
    expected = {key: warmup_cosine(*key[0])(key[1]) for key in answers}
    mistakes = _usual_mistakes()
    # Phase by phase, the first with a wrong factor: name the mistake that explains all of that phase.
    for phase, rule in _PHASES:
        points = [key for key in answers if _phase(key[1], key[0][0], key[0][1]) == phase]
        wrong = [key for key in points if not _close(answers[key], expected[key])]
        if not wrong:
            continue
        for message, mistake in mistakes.items():
            if all(_close(answers[key], mistake(key[1], *key[0])) for key in points):
                raise Incorrect(message + ".")
        (total, warmup, min_ratio), step = wrong[0]
        raise Incorrect(
            f"at step {step} (total_steps={total}, warmup_steps={warmup}, min_ratio={min_ratio}) your factor is "
            f"{answers[wrong[0]]:.6g}, expected {expected[wrong[0]]:.6g}: {rule}."
        )


register(
    Exercise(
        id="08.warmup_cosine",
        title="The learning-rate schedule: linear warm-up, then a cosine",
        grader=grade_lr_factor,
        solution_obj=lr_factor,
        hint_text=(
            "Two cases. While step < warmup_steps return (step + 1) / warmup_steps. After it, progress = "
            "min(1.0, (step - warmup_steps) / (total_steps - warmup_steps)) runs from 0 to 1 and stays there, and "
            "the factor is min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))."
        ),
    )
)

# ---------------------------------------------------------------------------------------------------
# 08.no_decay_groups


def weight_decay_groups(model, weight_decay):
    """Reference solution: two AdamW groups, weight decay on the weight matrices (and conv kernels) only;
    none on biases, norm weights (all 1-D), the class token and the position embeddings. Frozen
    parameters are left out."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen: the optimizer never sees it
        if param.ndim <= 1 or name.endswith(("pos_embed", "cls_token")):
            no_decay.append(param)  # biases, LayerNorm/BatchNorm weights, class token, positions
        else:
            decay.append(param)  # linear weights and conv kernels
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# Parameters a solution may put in either group: DeiT's distillation token is a prefix token like the
# class token (param_groups and timm exempt it), but the exercise's text names only the class token and
# the positions, so a rule that decays it (3-D, not named cls_token) is accepted too.
_EITHER_WAY = ("dist_token",)


def _vit(**kwargs) -> nn.Module:
    return VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, num_classes=5, **kwargs)


def _fine_tuned_vit() -> nn.Module:
    model = _vit()
    for name, param in model.named_parameters():
        if not name.startswith(("blocks.1", "norm", "head")):
            param.requires_grad_(False)
    return model


# (description, model factory, weight_decay): each model brings a mistake of its own to light
_PROBES = [
    ("a ViT (patch embedding, class token)", _vit, 0.05),
    (
        "a hybrid ViT with a convolutional stem (BatchNorm, average pooling, no class token)",
        lambda: _vit(stem="conv", stem_channels=(8, 16), global_pool="avg", class_token=False),
        0.3,
    ),
    (
        "a DeiT model with a distillation token",
        lambda: DistilledVisionTransformer(
            img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=5
        ),
        0.1,
    ),
    ("a ViT being fine-tuned (all but blocks.1, norm and head frozen)", _fine_tuned_vit, 0.02),
]

_ADAMW_DEFAULT_DECAY = 0.01  # what AdamW gives a group without a "weight_decay" key


def _group_params(group, index: int) -> list:
    """The tensors of one group, from a list, tuple or other ordered iterable, or named (name, tensor) pairs."""
    if not isinstance(group, dict):
        raise Incorrect(
            f"group {index} is a {type(group).__name__}; each group is a dict "
            "{'params': [...], 'weight_decay': ...}, as AdamW takes them."
        )
    if "params" not in group:
        raise Incorrect(f"group {index} has no 'params' key (it has {sorted(map(str, group))}).")
    params = group["params"]
    if isinstance(params, torch.Tensor):
        return [params]
    if isinstance(params, (set, frozenset)):
        raise Incorrect(
            f"group {index}'s params are a set: AdamW refuses sets (their order changes between runs, and "
            "the optimizer state is stored by position); use a list."
        )
    if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise Incorrect(f"group {index}'s params should be a list of parameters, got {type(params).__name__}.")
    tensors = []
    for item in params:
        if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
            item = item[1]  # named parameters, which AdamW also takes
        if isinstance(item, str):
            raise Incorrect(f"group {index} holds parameter names ({item!r}); AdamW needs the parameters themselves.")
        if not isinstance(item, torch.Tensor):
            raise Incorrect(f"group {index} holds a {type(item).__name__}; it should hold the model's parameters.")
        tensors.append(item)
    return tensors


def _group_decay(group, index: int) -> float | None:
    """The group's weight decay as a float, or None when the key is missing (AdamW's default then)."""
    if "weight_decay" not in group:
        return None
    value = as_float32(group["weight_decay"])
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Incorrect(f"group {index}'s weight_decay should be a number, got {type(value).__name__} ({value!r}).")
    return float(value)


def _are(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


def _names(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _module_kinds(model: nn.Module) -> dict[str, type]:
    """Parameter name → the type of the module that owns it."""
    kinds = {}
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            kinds[f"{module_name}.{param_name}" if module_name else param_name] = type(module)
    return kinds


def _diagnose_membership(model: nn.Module, decays: dict[str, bool], expected: dict[str, bool], weight_decay) -> None:
    """``decays``/``expected``: trainable parameter name → whether it gets weight decay."""
    graded = [name for name in expected if not name.endswith(_EITHER_WAY)]
    over = [name for name in graded if decays[name] and not expected[name]]  # decayed, should not be
    under = [name for name in graded if expected[name] and not decays[name]]  # not decayed, should be
    if not over and not under:
        return
    if over and under and set(over) | set(under) == set(graded):
        raise Incorrect(
            "the two groups are swapped: the weight matrices get weight_decay 0.0 and the biases, norms, class "
            f"token and positions get {weight_decay}."
        )
    if not under and all(decays[name] for name in graded):
        raise Incorrect(
            "every parameter gets weight decay: the group of biases, norm weights, class token and position "
            "embeddings needs 'weight_decay': 0.0."
        )
    if not over and not any(decays[name] for name in graded):
        raise Incorrect(
            f"no parameter gets weight decay: the group of weight matrices needs 'weight_decay': weight_decay "
            f"(here {weight_decay})."
        )
    kinds = _module_kinds(model)
    biases = [name for name in over if name.endswith("bias")]
    layer_norms = [name for name in over if issubclass(kinds[name], nn.LayerNorm) and name not in biases]
    batch_norms = [name for name in over if issubclass(kinds[name], nn.modules.batchnorm._BatchNorm)]
    batch_norms = [name for name in batch_norms if name not in biases]
    tokens = [name for name in over if name.endswith(("pos_embed", "cls_token"))]
    if biases:
        raise Incorrect(
            f"biases are decayed ({_names(biases)}): weight decay pulls a bias toward 0 for no gain; put every "
            "1-D parameter (param.ndim <= 1) in the no-decay group."
        )
    if layer_norms:
        raise Incorrect(
            f"LayerNorm weights are decayed ({_names(layer_norms)}): decay would pull each norm's scale toward 0; "
            "put them (1-D, param.ndim <= 1) in the no-decay group."
        )
    if batch_norms:
        raise Incorrect(
            f"the BatchNorm weights of the convolutional stem are decayed ({_names(batch_norms)}): their names do "
            "not say 'norm', so a rule on names misses them; test param.ndim <= 1 instead."
        )
    if tokens:
        raise Incorrect(
            f"the position embedding and class token are decayed ({_names(tokens)}): they are (1, N, D) tensors, so "
            "param.ndim <= 1 misses them; also exempt names ending in 'pos_embed' and 'cls_token'."
        )
    if over:
        verb = "gets" if len(over) == 1 else "get"
        raise Incorrect(
            f"{_names(over)} {verb} weight decay but should not: no decay on 1-D parameters, the class token "
            "and the position embeddings."
        )
    kernels = [
        name for name in under if expected[name] and name.endswith("weight") and model.get_parameter(name).ndim > 2
    ]
    if kernels and len(kernels) == len(under):
        raise Incorrect(
            f"convolution kernels are not decayed ({_names(kernels)}): they are 4-D, so test param.ndim <= 1 for "
            "the no-decay group rather than ndim == 2 for the decay group."
        )
    raise Incorrect(
        f"weight matrices are not decayed ({_names(under)}): every weight with 2 or more dimensions gets weight "
        "decay, except the class token and the position embeddings."
    )


def _check_layout(groups) -> None:
    """Two groups in a list: not the optimizer, not one dict."""
    if isinstance(groups, torch.optim.Optimizer):
        raise Incorrect("return the list of groups you would pass to AdamW, not the optimizer itself.")
    if isinstance(groups, dict):
        raise Incorrect("return a list of two groups (two dicts), got a single dict.")
    if not isinstance(groups, (list, tuple)):
        raise Incorrect(f"return a list of two groups (dicts with 'params'), got {type(groups).__name__}.")
    if len(groups) != 2:
        raise Incorrect(
            f"return two groups, one with weight decay and one without; got {len(groups)}. (AdamW would take "
            "more, but the exercise and param_groups use two.)"
        )


def _placement(model: nn.Module, groups) -> dict[str, list[int]]:
    """Parameter name → the group(s) holding it; a tensor that is not a parameter of the model is refused."""
    name_of = {id(param): name for name, param in model.named_parameters()}
    where = {}
    for index, group in enumerate(groups):
        for tensor in _group_params(group, index):
            if id(tensor) not in name_of:
                raise Incorrect(
                    f"group {index} holds a tensor that is not one of the model's parameters (p.data, p.detach() or "
                    "a copy?): pass the parameters themselves, from model.named_parameters()."
                )
            where.setdefault(name_of[id(tensor)], []).append(index)
    return where


def _check_each_once(model: nn.Module, where: dict[str, list[int]]) -> None:
    """No parameter twice, none frozen."""
    twice = [name for name, indices in where.items() if len(indices) > 1]
    both = [name for name in twice if len(set(where[name])) > 1]
    if both:
        raise Incorrect(
            f"{_names(both)} {_are(both)} in both groups: each parameter belongs to exactly one "
            "(AdamW refuses the rest)."
        )
    if twice:
        verb = "appears" if len(twice) == 1 else "appear"
        raise Incorrect(f"{_names(twice)} {verb} twice in the same group: list each parameter once.")
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    included = sorted(frozen & set(where))
    if included:
        raise Incorrect(
            f"frozen parameters (requires_grad=False) are in a group ({_names(included)}): leave out what does not "
            "train (if not param.requires_grad: continue), as param_groups does."
        )


def _expected_decay(model: nn.Module, weight_decay: float) -> dict[str, bool]:
    """Trainable parameter name → whether param_groups decays it."""
    name_of = {id(param): name for name, param in model.named_parameters()}
    return {
        name_of[id(param)]: group["weight_decay"] > 0
        for group in param_groups(model, weight_decay)
        for param in group["params"]
    }


def _check_decay_keys(group_decays, where, expected, weight_decay) -> None:
    """Every group says its weight_decay (AdamW's default is not 0)."""
    for index, decay in enumerate(group_decays):
        if decay is None:
            holds_matrices = all(expected[name] for name, indices in where.items() if index in indices)
            role = "the group of weight matrices" if holds_matrices else "the no-decay group"
            needed = f"'weight_decay': weight_decay (here {weight_decay})" if holds_matrices else "'weight_decay': 0.0"
            raise Incorrect(
                f"{role} has no 'weight_decay' key, so AdamW gives it its default {_ADAMW_DEFAULT_DECAY}: set {needed}."
            )


def _check_groups(model: nn.Module, groups, weight_decay: float) -> None:
    _check_layout(groups)
    where = _placement(model, groups)
    group_decays = [_group_decay(group, index) for index, group in enumerate(groups)]
    _check_each_once(model, where)
    expected = _expected_decay(model, weight_decay)
    missing = [name for name in expected if name not in where]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        raise Incorrect(
            f"{_names(missing)} {_are(missing)} in no group, so AdamW would never update {them}: every trainable "
            "parameter goes in one of the two groups."
        )
    _check_decay_keys(group_decays, where, expected, weight_decay)
    decays = {name: group_decays[indices[0]] != 0 for name, indices in where.items()}
    _diagnose_membership(model, decays, expected, weight_decay)
    for decay in group_decays:
        if decay != 0 and not math.isclose(decay, weight_decay, rel_tol=1e-6):
            raise Incorrect(
                f"the decay group's weight_decay is {decay}, but my_param_groups was called with "
                f"weight_decay={weight_decay}: use the argument, not a fixed number."
            )
    try:
        torch.optim.AdamW([dict(group) for group in groups], lr=1e-3)
    except Exception as error:
        raise Incorrect(f"AdamW refuses your groups: {type(error).__name__}: {error}") from error


def grade_param_groups(candidate) -> None:
    for description, build, weight_decay in _PROBES:
        with torch.device("meta"):  # only names, shapes and requires_grad matter: no memory, no random draws
            model = build()
        try:
            groups = candidate(model, weight_decay)
        except (NotImplementedError, Incorrect):
            raise
        except Exception as error:
            raise Incorrect(f"on {description} your code raised {type(error).__name__}: {error}".strip()) from error
        try:
            _check_groups(model, groups, weight_decay)
        except Incorrect as wrong:
            raise Incorrect(f"on {description} (weight_decay={weight_decay}): {wrong}") from None


register(
    Exercise(
        id="08.no_decay_groups",
        title="AdamW parameter groups: no weight decay on biases, norms, class token and positions",
        grader=grade_param_groups,
        solution_obj=weight_decay_groups,
        hint_text=(
            "Loop over model.named_parameters(); skip parameters with requires_grad False. A parameter goes in the "
            "no-decay list when param.ndim <= 1 (biases, LayerNorm and BatchNorm weights) or its name ends with "
            "'pos_embed' or 'cls_token'; every other one in the decay list. Return [{'params': decay, "
            "'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]."
        ),
    )
)
