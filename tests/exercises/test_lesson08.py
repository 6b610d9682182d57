"""Bug zoo for 08.warmup_cosine and 08.no_decay_groups (run by test_zoos.py), and correct answers in
other styles (torch, NumPy, timm, other group layouts) that the graders accept."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vit_lessons.exercises import get_exercise

# 08.warmup_cosine


def _factor(
    step,
    total_steps,
    warmup_steps,
    min_ratio,
    *,
    warm_start=1,
    warm_end=None,
    warm_div=0,
    floor=True,
    scale=True,
    clip=False,
    from_zero=False,
    denominator=None,
    clamp=True,
    sign=1,
    angle=math.pi,
    linear=False,
):
    """A schedule written out term by term, each term switchable to a typical mistake."""
    in_warmup = step <= warmup_steps if warm_end == "late" else step < warmup_steps
    if in_warmup:
        return (step + warm_start) / (warmup_steps + warm_div)
    span = {None: total_steps - warmup_steps, "total": total_steps, "early": total_steps - warmup_steps - 1}[
        denominator
    ]
    progress = step / total_steps if from_zero else (step - warmup_steps) / max(1, span)
    if clamp:
        progress = min(1.0, progress)
    if linear:
        return min_ratio + (1 - min_ratio) * (1 - progress)
    cosine = 0.5 * (1 + sign * math.cos(angle * progress))
    if clip:
        return max(min_ratio, cosine)
    if not floor:
        return cosine
    return min_ratio + ((1 - min_ratio) if scale else 1) * cosine


def _lr_bug(name, **mistake):
    def candidate(step, total_steps, warmup_steps, min_ratio):
        return _factor(step, total_steps, warmup_steps, min_ratio, **mistake)

    candidate.__name__ = name
    return candidate


def warmup_from_zero_and_no_clamp(step, total_steps, warmup_steps, min_ratio):
    # two mistakes: the grader names the first phase's, the warm-up
    return _factor(step, total_steps, warmup_steps, min_ratio, warm_start=0, clamp=False)


def constant_after_warmup(step, total_steps, warmup_steps, min_ratio):
    return min(1.0, (step + 1) / warmup_steps)


def returns_a_function(step, total_steps, warmup_steps, min_ratio):
    return lambda s: _factor(s, total_steps, warmup_steps, min_ratio)


def returns_a_string(step, total_steps, warmup_steps, min_ratio):
    return f"{_factor(step, total_steps, warmup_steps, min_ratio):.4f}"


def precomputed_table(step, total_steps, warmup_steps, min_ratio):
    table = [_factor(s, total_steps, warmup_steps, min_ratio) for s in range(total_steps)]
    return table[step]  # IndexError past total_steps


def zero_division_when_done(step, total_steps, warmup_steps, min_ratio):
    if step >= total_steps:
        return float("nan")
    return _factor(step, total_steps, warmup_steps, min_ratio)


WARMUP_COSINE_BUGS = {
    _lr_bug("warmup_from_zero", warm_start=0): "warm-up starts at 0",
    _lr_bug("warmup_one_step_long", warm_end="late"): "one step too long",
    _lr_bug("warmup_over_warmup_plus_one", warm_div=1): "never reaches 1",
    _lr_bug("cosine_to_zero", floor=False): "down to 0 instead of min_ratio",
    _lr_bug("min_ratio_not_scaled", scale=False): r"starts at 1 \+ min_ratio",
    _lr_bug("cosine_clipped_at_min", clip=True): "cut the cosine off",
    _lr_bug("cosine_from_step_zero", from_zero=True): "measured from step 0",
    _lr_bug("divides_by_total_steps", denominator="total"): "does not reach min_ratio",
    _lr_bug("reaches_min_one_step_early", denominator="early"): "one step early",
    _lr_bug("no_clamp", clamp=False): "no clamp after total_steps",
    _lr_bug("one_minus_cos", sign=-1): "1 - cos",
    _lr_bug("degrees", angle=180): "takes radians",
    _lr_bug("radians_twice", angle=math.pi * math.pi / 180): "already in radians",
    _lr_bug("forgot_pi", angle=1): "π is missing",
    _lr_bug("full_period", angle=2 * math.pi): "whole period",
    _lr_bug("linear_decay", linear=True): "decay is linear",
    warmup_from_zero_and_no_clamp: "warm-up starts at 0",
    constant_after_warmup: r"at step 11 \(total_steps=100.*expected 0\.99.*after the warm-up, progress",
    returns_a_function: "returned a function",
    returns_a_string: r"as a number \(a float\), got str",
    precomputed_table: r"at step 100 .* raised IndexError",
    zero_division_when_done: "the factor is nan",
}


@pytest.fixture(scope="module")
def ex_lr():
    return get_exercise("08.warmup_cosine")


def lr_torch(step, total_steps, warmup_steps, min_ratio):
    step = torch.tensor(float(step))
    warm = (step + 1) / warmup_steps
    progress = ((step - warmup_steps) / max(1, total_steps - warmup_steps)).clamp(0, 1)
    cosine = min_ratio + (1 - min_ratio) * 0.5 * (1 + torch.cos(torch.pi * progress))
    return torch.where(step < warmup_steps, warm, cosine)  # a 0-d float32 tensor


def lr_torch_float64(step, total_steps, warmup_steps, min_ratio):
    return lr_torch(step, total_steps, warmup_steps, min_ratio).double()


def lr_numpy(step, total_steps, warmup_steps, min_ratio):
    if step < warmup_steps:
        return np.float32((step + 1) / warmup_steps)
    progress = np.clip((step - warmup_steps) / (total_steps - warmup_steps), 0.0, 1.0)
    return min_ratio + (1 - min_ratio) * (np.cos(np.pi * progress) + 1) / 2  # a NumPy float64


def lr_degrees_done_right(step, total_steps, warmup_steps, min_ratio):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= total_steps:
        return min_ratio
    angle = 180 * (step - warmup_steps) / (total_steps - warmup_steps)  # degrees, converted below
    return min_ratio + (1 - min_ratio) * math.cos(math.radians(angle / 2)) ** 2  # cos²(θ/2) = (1 + cos θ) / 2


def lr_from_the_package(step, total_steps, warmup_steps, min_ratio):
    from vit_lessons.train.trainer import warmup_cosine

    return warmup_cosine(total_steps, warmup_steps, min_ratio)(step)


@pytest.mark.parametrize(
    "answer", [lr_torch, lr_torch_float64, lr_numpy, lr_degrees_done_right, lr_from_the_package, _factor]
)
def test_a_right_schedule_in_any_style_is_correct(ex_lr, answer):
    assert ex_lr.grade(answer).status == "correct", ex_lr.grade(answer)


def test_check_prints_the_named_mistake(ex_lr, capsys):
    ex_lr.check(_lr_bug("warmup_from_zero", warm_start=0))
    assert "warm-up starts at 0" in capsys.readouterr().out


# 08.no_decay_groups


def _split(model, *, no_decay_if, skip_frozen=True):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if skip_frozen and not param.requires_grad:
            continue
        (no_decay if no_decay_if(name, param) else decay).append(param)
    return decay, no_decay


def _right(name, param):
    return param.ndim <= 1 or name.endswith(("pos_embed", "cls_token"))


def _groups(decay, no_decay, weight_decay, no_decay_value=0.0):
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": no_decay_value}]


def decays_biases(model, weight_decay):
    def exempt(name, param):  # norm weights and tokens, but not the biases
        return (param.ndim == 1 and not name.endswith("bias")) or name.endswith(("pos_embed", "cls_token"))

    return _groups(*_split(model, no_decay_if=exempt), weight_decay)


def decays_layer_norms(model, weight_decay):
    def exempt(name, param):  # biases and tokens, but not the norm weights
        return name.endswith(("bias", "pos_embed", "cls_token"))

    return _groups(*_split(model, no_decay_if=exempt), weight_decay)


def norm_rule_on_names(model, weight_decay):
    def exempt(name, param):  # right on the plain ViT; the conv stem's BatchNorms are named stem.1, stem.4
        return "norm" in name or name.endswith(("bias", "pos_embed", "cls_token"))

    return _groups(*_split(model, no_decay_if=exempt), weight_decay)


def decays_tokens(model, weight_decay):
    def exempt(name, param):  # the (1, N, D) tokens slip through
        return param.ndim <= 1

    return _groups(*_split(model, no_decay_if=exempt), weight_decay)


def decays_only_2d(model, weight_decay):
    def exempt(name, param):  # decays matrices only: 4-D conv kernels slip through
        return param.ndim != 2 or name.endswith(("pos_embed", "cls_token"))

    return _groups(*_split(model, no_decay_if=exempt), weight_decay)


def drops_tokens(model, weight_decay):
    decay, no_decay = _split(model, no_decay_if=_right)
    tokens = [p for n, p in model.named_parameters() if n.endswith(("pos_embed", "cls_token"))]
    return _groups(decay, [p for p in no_decay if all(p is not t for t in tokens)], weight_decay)


def param_in_both_groups(model, weight_decay):
    everything = [p for p in model.parameters() if p.requires_grad]
    return _groups(everything, _split(model, no_decay_if=_right)[1], weight_decay)


def duplicate_in_a_group(model, weight_decay):
    decay, no_decay = _split(model, no_decay_if=_right)
    return _groups(decay + decay[:1], no_decay, weight_decay)


def includes_frozen(model, weight_decay):
    return _groups(*_split(model, no_decay_if=_right, skip_frozen=False), weight_decay)


def fixed_weight_decay(model, weight_decay):
    return _groups(*_split(model, no_decay_if=_right), 0.05)


def no_decay_key_missing(model, weight_decay):
    decay, no_decay = _split(model, no_decay_if=_right)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay}]


def values_swapped(model, weight_decay):
    decay, no_decay = _split(model, no_decay_if=_right)
    return _groups(decay, no_decay, 0.0, no_decay_value=weight_decay)


def both_groups_decay(model, weight_decay):
    return _groups(*_split(model, no_decay_if=_right), weight_decay, no_decay_value=weight_decay)


def nothing_decays(model, weight_decay):
    return _groups(*_split(model, no_decay_if=_right), 0.0)


def returns_the_optimizer(model, weight_decay):
    return torch.optim.AdamW(_groups(*_split(model, no_decay_if=_right), weight_decay), lr=1e-3)


def returns_one_dict(model, weight_decay):
    return _groups(*_split(model, no_decay_if=_right), weight_decay)[0]


def one_group_per_parameter(model, weight_decay):
    return [
        {"params": [p], "weight_decay": 0.0 if _right(n, p) else weight_decay}
        for n, p in model.named_parameters()
        if p.requires_grad
    ]


def detached_copies(model, weight_decay):
    decay, no_decay = _split(model, no_decay_if=_right)
    return _groups([p.detach() for p in decay], [p.detach() for p in no_decay], weight_decay)


def params_in_sets(model, weight_decay):
    decay, no_decay = _split(model, no_decay_if=_right)
    return _groups(set(decay), set(no_decay), weight_decay)


def names_not_params(model, weight_decay):
    decay = [n for n, p in model.named_parameters() if p.requires_grad and not _right(n, p)]
    no_decay = [n for n, p in model.named_parameters() if p.requires_grad and _right(n, p)]
    return _groups(decay, no_decay, weight_decay)


def crashes_on_a_model_without_class_token(model, weight_decay):
    model.cls_token.shape  # noqa: B018 (None on the hybrid ViT)
    return _groups(*_split(model, no_decay_if=_right), weight_decay)


NO_DECAY_GROUPS_BUGS = {
    decays_biases: r"on a ViT \(patch embedding, class token\).*biases are decayed \(.*bias",
    decays_layer_norms: r"LayerNorm weights are decayed \(blocks\.0\.norm1\.weight",
    norm_rule_on_names: r"on a hybrid ViT.*BatchNorm weights of the convolutional stem.*patch_embed\.stem\.1\.weight",
    decays_tokens: r"position embedding and class token are decayed \(cls_token, pos_embed\)",
    decays_only_2d: r"convolution kernels are not decayed \(patch_embed\.proj\.weight\)",
    drops_tokens: r"cls_token, pos_embed are in no group",
    param_in_both_groups: "in both groups",
    duplicate_in_a_group: r"patch_embed\.proj\.weight appears twice in the same group",
    includes_frozen: r"fine-tuned.*frozen parameters \(requires_grad=False\)",
    fixed_weight_decay: r"weight_decay=0\.3\).*the decay group's weight_decay is 0\.05",
    no_decay_key_missing: r"no-decay group has no 'weight_decay' key.*default 0\.01",
    values_swapped: "groups are swapped",
    both_groups_decay: "every parameter gets weight decay",
    nothing_decays: "no parameter gets weight decay",
    returns_the_optimizer: "not the optimizer itself",
    returns_one_dict: "got a single dict",
    one_group_per_parameter: r"return two groups.*got 3\d",
    detached_copies: r"not one of the model's parameters \(p\.data, p\.detach\(\)",
    params_in_sets: "AdamW refuses sets",
    names_not_params: "parameter names",
    crashes_on_a_model_without_class_token: r"on a hybrid ViT.* raised AttributeError",
}

ZOO = {"08.warmup_cosine": WARMUP_COSINE_BUGS, "08.no_decay_groups": NO_DECAY_GROUPS_BUGS}


@pytest.fixture(scope="module")
def ex_groups():
    return get_exercise("08.no_decay_groups")


def groups_from_timm(model, weight_decay):
    from timm.optim import param_groups_weight_decay

    return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=("pos_embed", "cls_token"))


def groups_reversed_and_shuffled(model, weight_decay):
    import random

    decay, no_decay = _split(model, no_decay_if=_right)
    random.Random(0).shuffle(decay)
    return (
        {"params": tuple(no_decay), "weight_decay": 0, "name": "no_decay"},
        {"params": decay[::-1], "weight_decay": weight_decay, "lr": 1e-3},
    )


def groups_from_filters(model, weight_decay):
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": (p for n, p in trainable if not _right(n, p)), "weight_decay": np.float64(weight_decay)},
        {
            "params": filter(
                lambda p: (
                    p.ndim <= 1 or p is getattr(model, "pos_embed", None) or p is getattr(model, "cls_token", None)
                ),
                (p for _, p in trainable),
            ),
            "weight_decay": torch.tensor(0.0),
        },
    ]


def groups_with_names(model, weight_decay):
    decay = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not _right(n, p)]
    no_decay = [(n, p) for n, p in model.named_parameters() if p.requires_grad and _right(n, p)]
    return _groups(decay, no_decay, weight_decay)


def groups_by_module_type(model, weight_decay):
    exempt = set()
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            exempt.update(id(p) for p in module.parameters(recurse=False))
    for name, param in model.named_parameters():
        if name.endswith(("bias", "pos_embed", "cls_token", "dist_token")):  # DeiT's token exempt too, as in timm
            exempt.add(id(param))
    decay, no_decay = _split(model, no_decay_if=lambda n, p: id(p) in exempt)
    return _groups(decay, no_decay, weight_decay)


def groups_from_the_package(model, weight_decay):
    from vit_lessons.train.trainer import param_groups

    return param_groups(model, weight_decay)


@pytest.mark.parametrize(
    "answer",
    [
        groups_from_timm,
        groups_reversed_and_shuffled,
        groups_from_filters,
        groups_with_names,
        groups_by_module_type,
        groups_from_the_package,
    ],
)
def test_right_groups_in_any_layout_are_correct(ex_groups, answer):
    assert ex_groups.grade(answer).status == "correct", ex_groups.grade(answer)


def test_the_distillation_token_may_go_either_way(ex_groups):
    # param_groups exempts DeiT's dist_token, as timm does; a rule that decays it (3-D, not named cls_token)
    # is accepted too: the lesson's text names only the class token and the positions.
    from vit_lessons.deit import DistilledVisionTransformer
    from vit_lessons.train.trainer import param_groups

    with torch.device("meta"):
        model = DistilledVisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2)
    assert id(model.dist_token) in {id(p) for p in param_groups(model, 0.1)[1]["params"]}
    assert id(model.dist_token) in {id(p) for p in groups_by_module_type(model, 0.1)[1]["params"]}

    def decays_the_dist_token(model, weight_decay):
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                skip = param.ndim <= 1 or name.endswith(("pos_embed", "cls_token"))
                (no_decay if skip else decay).append(param)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    assert ex_groups.grade(decays_the_dist_token).status == "correct", ex_groups.grade(decays_the_dist_token)
