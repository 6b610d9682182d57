"""Lesson 06 exercises: the pre-norm encoder block, graded against
:class:`vit_lessons.blocks.EncoderBlock` with random weights (LayerNorm weights and biases included),
and stochastic depth (DropPath).

Two mistakes are tiny in value and need chosen inputs to show:

- LayerNorm eps 1e-5 instead of 1e-6 changes LN(x) by a relative ~(1e-5 - 1e-6) / (2 var(x)): invisible
  for unit-variance tokens (~5e-6), about 4 % for tokens with standard deviation 0.01. Large inputs
  make it *less* visible, so the grader adds a small-variance input.
- The tanh approximation of GELU differs from the exact (erf) GELU by at most ~5e-4 per hidden unit;
  summed by fc2 over the hidden units that is ~1e-3 at the output, well above float32 noise (~1e-6).
  The grader rejects it: timm and PyTorch ViT weights were trained with the exact GELU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import LAYER_NORM_EPS, EncoderBlock
from . import Exercise, register
from .grading import Incorrect, compare_token_outputs, expect_tensor, module_with_reference_weights

__all__ = ["PreNormBlock", "drop_path", "grade_encoder_block", "grade_drop_path"]


class PreNormBlock(nn.Module):
    """Reference solution: z' = z + MSA(LN(z)); z = z' + MLP(LN(z')) (ViT Eq. 2-3)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        from collections import OrderedDict

        from vit_lessons.attention import MultiHeadSelfAttention  # lesson 05's attention

        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        # Named layers, so the parameters are mlp.fc1.* and mlp.fc2.* (timm's names).
        self.mlp = nn.Sequential(
            OrderedDict(fc1=nn.Linear(dim, hidden), act=nn.GELU(), fc2=nn.Linear(hidden, dim))  # exact (erf) GELU
        )

    def forward(self, tokens):
        tokens = tokens + self.attn(self.norm1(tokens))  # (B, N, D): attention reads normalised tokens
        tokens = tokens + self.mlp(self.norm2(tokens))  # (B, N, D): the residual stream is never normalised
        return tokens


def _layer_norm(norm: nn.LayerNorm, tokens, eps):
    return F.layer_norm(tokens, norm.normalized_shape, norm.weight, norm.bias, eps)


def _block_variant(block: EncoderBlock, tokens: torch.Tensor, mistake: str) -> torch.Tensor:
    """The reference block with one usual mistake (for diagnosis)."""
    eps = 1e-5 if mistake == "eps" else LAYER_NORM_EPS

    def norm1(x):
        return _layer_norm(block.norm1, x, eps)

    def norm2(x):
        return norm1(x) if mistake == "norm1_twice" else _layer_norm(block.norm2, x, eps)

    def mlp(x):
        hidden = block.mlp.fc1(x)
        if mistake == "relu":
            hidden = F.relu(hidden)
        else:
            hidden = F.gelu(hidden, approximate="tanh" if mistake == "tanh" else "none")
        return block.mlp.fc2(hidden)

    if mistake == "post_norm":
        tokens = norm1(tokens + block.attn(tokens))
        return norm2(tokens + mlp(tokens))
    if mistake == "seed_double_residual":  # post-norm, on an attention that returns x + MSA(x)
        tokens = norm1(tokens + tokens + block.attn(tokens))
        return norm2(tokens + mlp(tokens))
    if mistake == "double_residual":  # pre-norm, on an attention that returns x + MSA(x)
        normed = norm1(tokens)
        tokens = tokens + normed + block.attn(normed)
        return tokens + mlp(norm2(tokens))
    attended = block.attn(norm1(tokens))
    tokens = attended if mistake == "no_attn_residual" else tokens + attended
    mlp_out = mlp(norm2(tokens))
    return mlp_out if mistake == "no_mlp_residual" else tokens + mlp_out


MISTAKES = {
    "post_norm": (
        "this is a post-norm block, LN(z + MSA(z)), as in the original Transformer (and a popular tutorial "
        "that calls it 'the original ViT'); ViT is pre-norm: z + MSA(LN(z)), then z + MLP(LN(z))"
    ),
    "norm1_twice": "norm1 is used before the MLP too (norm2 is unused): the MLP branch reads norm2(tokens)",
    "relu": "the MLP uses ReLU; ViT uses GELU (nn.GELU())",
    "tanh": (
        "the MLP uses the tanh approximation of GELU (max difference ~5e-4 per unit, still measurable); "
        "use the exact nn.GELU() (approximate='none'), as timm and PyTorch ViT weights do"
    ),
    "no_attn_residual": "the attention branch has no residual: tokens = tokens + attn(norm1(tokens))",
    "no_mlp_residual": "the MLP branch has no residual: tokens = tokens + mlp(norm2(tokens))",
    "eps": (
        "the LayerNorms use eps=1e-5 (PyTorch's default; it shows on small-variance tokens): ViT uses "
        "nn.LayerNorm(dim, eps=1e-6)"
    ),
    "seed_double_residual": (
        "this is a popular tutorial's block: post-norm, x = norm1(x + attention(x)), on an attention module that "
        "already adds its input, so the block adds the residual twice (x + (x + MSA(x))). ViT is pre-norm with "
        "one residual per branch: tokens = tokens + attn(norm1(tokens)), where attn returns only proj(attention)"
    ),
    "double_residual": (
        "the attention branch adds the residual twice: your attn already returns its input plus the attention "
        "(as the MultiHeadAttention wrapper of a popular tutorial does), and the block adds tokens + ... again. "
        "attn returns only proj(attention); the block adds the residual once: tokens = tokens + attn(norm1(tokens))"
    ),
}


def _diagnose(block: EncoderBlock, tokens: torch.Tensor, out: torch.Tensor) -> str:
    for mistake, message in MISTAKES.items():
        if torch.allclose(out, _block_variant(block, tokens, mistake), atol=1e-5, rtol=1e-4):
            return message
    return ""


def _check_attention_has_no_norm(module: nn.Module, dim: int) -> None:
    """A LayerNorm over the features inside attn: the attention wrapper of seed 001's tutorial, which adds the
    residual and normalises inside attention, norm(attention + x), while its block adds x + ... again."""
    attn = getattr(module, "attn", None)
    if not isinstance(attn, nn.Module):
        return
    for name, submodule in attn.named_modules():
        if isinstance(submodule, nn.LayerNorm) and tuple(submodule.normalized_shape) == (dim,):
            raise Incorrect(
                f"there is a LayerNorm inside attn (attn.{name}): a popular tutorial's MultiHeadAttention wrapper "
                "puts the residual and a LayerNorm inside attention, norm(attention + x), and its block then adds "
                "x + ... again, a double residual. In ViT attn is only qkv, attention, proj (lesson 05); the block "
                "owns the LayerNorms (norm1 before attn, norm2 before mlp) and adds each residual once."
            )


def _format_eps(eps: float) -> str:
    return f"{eps:g}".replace("e-0", "e-")  # 1e-05 -> 1e-5, as the messages write it


def _wrong_norms(module: nn.Module, reference: EncoderBlock, dim: int, generator: torch.Generator) -> list[str]:
    """Each LayerNorm on its own, on small-variance tokens where eps shows: a wrong eps on one norm only
    can hide in the block's output (norm2 sees the residual stream, whose variance attention has raised)."""
    tokens = 1 + 0.01 * torch.randn(2, 3, dim, generator=generator)  # (B, N, D), std 0.01
    wrong = []
    for name, other in (("norm1", "norm2"), ("norm2", "norm1")):
        norm = getattr(module, name, None)
        try:
            with torch.no_grad():
                out = norm(tokens)
        except Exception:  # the block's output was checked; a norm that cannot be called alone is its business
            continue
        expected = getattr(reference, name)(tokens).detach()
        if isinstance(out, torch.Tensor) and out.shape == expected.shape:
            if torch.allclose(out.detach().float(), expected, atol=1e-5, rtol=1e-4):
                continue
        eps, other_eps = getattr(norm, "eps", None), getattr(getattr(module, other, None), "eps", None)
        if isinstance(eps, float) and eps != LAYER_NORM_EPS:
            also = f" ({other} rightly uses {_format_eps(other_eps)})" if other_eps == LAYER_NORM_EPS else ""
            wrong.append(
                f"{name} uses eps={_format_eps(eps)}{also}: ViT uses nn.LayerNorm(dim, eps=1e-6) for every LayerNorm. "
                "The difference shows only on small-variance tokens (std 0.01), so check each norm's settings."
            )
        else:
            wrong.append(
                f"{name} alone does not compute nn.LayerNorm(dim, eps=1e-6) on small-variance tokens (std 0.01): "
                "check its eps and that it normalises over the last dimension, then applies its weight and bias."
            )
    return wrong


def _check_parameters(module: nn.Module, dim: int, num_heads: int, mlp_ratio: float) -> None:
    _check_attention_has_no_norm(module, dim)
    hidden = int(dim * mlp_ratio)
    expected = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        "mlp.fc1.weight": (hidden, dim),
        "mlp.fc1.bias": (hidden,),
        "mlp.fc2.weight": (dim, hidden),
        "mlp.fc2.bias": (dim,),
    }
    params = {name: tuple(p.shape) for name, p in module.named_parameters()}
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if "norm2.weight" in missing and "norm2.weight" not in extra:
        raise Incorrect("there is no norm2: the block needs two LayerNorms, norm1 before attn and norm2 before mlp.")
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
        raise Incorrect(
            f"parameter names differ ({'; '.join(parts)}): use norm1, attn (with qkv and proj), norm2 and mlp "
            "(with fc1 and fc2), timm's names, so that pretrained weights load."
        )
    if params["mlp.fc1.weight"] != expected["mlp.fc1.weight"]:
        raise Incorrect(
            f"wrong MLP hidden size for dim={dim}, mlp_ratio={mlp_ratio}: fc1 maps to {params['mlp.fc1.weight'][0]} "
            f"features, expected int(dim * mlp_ratio) = {hidden}."
        )
    for name, shape in expected.items():
        if params[name] != shape:
            raise Incorrect(f"parameter {name} has shape {params[name]}, expected {shape}.")


# (dim, num_heads, mlp_ratio, B, N); the last has a fractional dim * mlp_ratio (72.6): fc1 has int() = 72 outputs
CASES = [(24, 3, 4.0, 2, 7), (32, 4, 2.0, 1, 5), (20, 2, 2.5, 2, 3), (22, 2, 3.3, 1, 4)]


def grade_encoder_block(candidate) -> None:
    if not isinstance(candidate, type):
        raise Incorrect(f"pass the class itself (not an instance or a function); got {type(candidate).__name__}.")
    generator = torch.Generator().manual_seed(6)
    for dim, num_heads, mlp_ratio, batch, tokens_n in CASES:
        setting = f"dim={dim}, num_heads={num_heads}, mlp_ratio={mlp_ratio}"
        ref = EncoderBlock(dim, num_heads, mlp_ratio=mlp_ratio)
        module = module_with_reference_weights(
            candidate,
            ref,
            (dim, num_heads),
            dict(mlp_ratio=mlp_ratio),
            _check_parameters,
            generator,
        )
        # Unit-scale tokens with an offset, large tokens, and small-variance tokens (where eps shows).
        inputs = {
            "unit-scale tokens": torch.randn(batch, tokens_n, dim, generator=generator) + 0.5,
            "large tokens (std 10)": 10 * torch.randn(batch, tokens_n, dim, generator=generator),
            "small-variance tokens (std 0.01)": 1 + 0.01 * torch.randn(batch, tokens_n, dim, generator=generator),
        }
        wrong_norms = _wrong_norms(module, ref, dim, generator)
        if len(wrong_norms) == 1:  # one norm wrong may hide in the output; both wrong shows there, as below
            raise Incorrect(wrong_norms[0])
        for what, tokens in inputs.items():
            compare_token_outputs(
                module,
                ref,
                tokens,
                setting,
                f"{setting} on {what}",
                _diagnose,
                "check the order: norm1, attn, residual; norm2, mlp, residual",
                "use tokens = tokens + ... instead.",
                atol=1e-5,
            )
        if wrong_norms:
            raise Incorrect(wrong_norms[0])


def drop_path(tokens, drop_prob, training=True):
    """Reference solution: stochastic depth. Drop each sample's whole branch with probability
    drop_prob and scale the survivors by 1 / (1 - drop_prob); identity when not training."""
    import torch

    if not training or drop_prob == 0.0:
        return tokens
    keep_prob = 1.0 - drop_prob
    shape = (tokens.shape[0],) + (1,) * (tokens.ndim - 1)  # one coin per sample: (B, 1, 1)
    keep = torch.rand(shape, dtype=tokens.dtype, device=tokens.device) < keep_prob
    return tokens * keep / keep_prob


def grade_drop_path(candidate) -> None:
    with torch.random.fork_rng(devices=[]):  # grading leaves the caller's random stream as it was
        _grade_drop_path(candidate)


def _dropped(out: torch.Tensor) -> torch.Tensor:
    return out.detach().flatten(1)[:, 0] == 0  # (B,): which samples were dropped (the input is never zero)


def _check_random_stream(candidate, tokens: torch.Tensor) -> None:
    """drop_path draws fresh coins from torch's global generator at every call and never reseeds it."""
    masks = [_dropped(candidate(tokens, 0.3, training=True)) for _ in range(3)]
    if any(torch.equal(first, second) for first, second in zip(masks, masks[1:])):
        raise Incorrect(
            "two calls in a row dropped exactly the same samples: each call must draw new coins. Do you reseed "
            "inside drop_path (torch.manual_seed(...), or a new torch.Generator)? That repeats one mask at every "
            "step (and torch.manual_seed resets the random stream of everything else too); draw with torch.rand "
            "and leave seeding to the caller."
        )
    after = []  # the caller's next random numbers, for seeds 1, 1, 2 set before the call
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        candidate(tokens, 0.3, training=True)
        after.append(torch.rand(8))
    if not torch.equal(after[0], after[1]) or torch.equal(after[0], after[2]):
        raise Incorrect(
            "drop_path resets torch's global random generator: after your call, the random numbers no longer "
            "follow the seed the caller set (torch.manual_seed(...) at the top of a run), so runs stop being "
            "reproducible. Do not call torch.manual_seed or torch.seed inside it; draw the coins with torch.rand "
            "and leave seeding to the caller."
        )


def _grade_drop_path(candidate) -> None:
    torch.manual_seed(6)
    tokens = torch.randn(4000, 3, 5).abs() + 0.1  # (B, N, D), never zero
    for training in (False, True):
        out = candidate(tokens, 0.0, training=training)
        expect_tensor(out, "drop_path(tokens, 0.0)", tuple(tokens.shape))
        if not torch.equal(out, tokens):
            raise Incorrect("with drop_prob=0 the branch must come back unchanged.")
    out = expect_tensor(candidate(tokens, 0.3, training=False), "drop_path in eval", tuple(tokens.shape))
    if not torch.equal(out, tokens):
        raise Incorrect("when not training, drop_path must return the branch unchanged (no dropping, no scaling).")
    before = tokens.clone()
    out = expect_tensor(candidate(tokens, 0.3, training=True), "drop_path in training", tuple(tokens.shape)).detach()
    if not torch.equal(tokens, before):
        raise Incorrect("drop_path changed its input in place; return a new tensor.")
    ratio = out / tokens  # 0 where dropped, 1/keep where kept
    dropped = ratio == 0
    per_sample = dropped.flatten(1)
    if not (per_sample.all(1) | (~per_sample).all(1)).all():
        raise Incorrect(
            "some samples are only partly dropped: that is element-wise dropout (nn.Dropout). Stochastic depth "
            "draws one coin per sample, shape (B, 1, 1), and drops that sample's whole branch."
        )
    fraction = per_sample[:, 0].float().mean().item()
    if abs(fraction - 0.3) > 0.05:
        raise Incorrect(
            f"{fraction:.0%} of the samples were dropped with drop_prob=0.3; drop each with probability 0.3."
        )
    kept = ratio[~dropped]
    if torch.allclose(kept, torch.ones_like(kept)):
        raise Incorrect(
            "the kept samples are not rescaled: divide by (1 - drop_prob) so the expected output equals the input."
        )
    if not torch.allclose(kept, torch.full_like(kept, 1 / 0.7), rtol=1e-5):
        raise Incorrect(
            f"kept samples are scaled by {kept.mean().item():.3f}; scale by 1 / (1 - drop_prob) = {1 / 0.7:.3f}."
        )
    _check_random_stream(candidate, tokens)


register(
    Exercise(
        id="06.encoder_block",
        title="The pre-norm encoder block",
        grader=grade_encoder_block,
        solution_obj=PreNormBlock,
        hint_text=(
            "norm1 = nn.LayerNorm(dim, eps=1e-6); attn = your lesson-05 attention (qkv, proj); norm2 likewise; "
            "mlp with fc1 = nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), fc2 back to dim. forward: "
            "tokens = tokens + attn(norm1(tokens)); tokens = tokens + mlp(norm2(tokens))."
        ),
    )
)

register(
    Exercise(
        id="06.drop_path",
        title="Stochastic depth",
        grader=grade_drop_path,
        solution_obj=drop_path,
        hint_text=(
            "If not training (or drop_prob == 0) return tokens. Else draw keep = torch.rand(B, 1, 1) < 1 - drop_prob "
            "(one coin per sample, broadcast over tokens and features) and return tokens * keep / (1 - drop_prob)."
        ),
    )
)
