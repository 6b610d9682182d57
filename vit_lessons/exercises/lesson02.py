"""Lesson 02 exercises: the patch embedding and the class token, graded against
:class:`vit_lessons.patches.PatchEmbedding` and the class-token step of
:meth:`vit_lessons.vit.VisionTransformer.embed`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..patches import PatchEmbedding as ReferencePatchEmbedding
from . import Exercise, register
from .grading import Incorrect, copy_weights, expect_tensor

_IMPORTS = "import torch\nfrom torch import nn\n\n\n"


@dataclass
class _ExerciseWithImports(Exercise):
    """An exercise whose solution is a class: its base class needs ``nn`` before the class body
    runs, so the solution's source starts with the imports it needs (it stays self-contained)."""

    imports: str = _IMPORTS

    def solution_source(self, name: str | None = None) -> str:
        return self.imports + super().solution_source(name)


class PatchEmbedding(nn.Module):
    """Reference solution: a stride-P convolution, then the grid flattened row-major into tokens."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
        self.grid_size = (height // patch_size, width // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images):
        tokens = self.proj(images)  # (B, D, H/P, W/P)
        return tokens.flatten(2).transpose(1, 2)  # (B, N, D)


def prepend_class_token(tokens, cls_token):
    """Reference solution: one shared (1, 1, D) class token in front of each image's tokens."""
    import torch

    cls = cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D): a view, so gradients reach cls_token
    return torch.cat([cls, tokens], dim=1)  # (B, 1 + N, D)


# -- 02.patch_embedding --------------------------------------------------------------------------


# A probe for answers that use an nn.Linear: img_size, patch_size, in_chans, embed_dim, batch. Three
# channels, so that the (channel, row, column) and (row, column, channel) orders of a patch differ.
_ORDER_PROBE = (8, 2, 3, 12, 2)
_CONV_ORDER, _CHANNELS_LAST = "(channel, row, column)", "(row, column, channel)"


def _linear_patch_order(candidate) -> tuple[str, int] | None:
    """The order in which a Linear-based patch embedding flattens each patch, and how many extra tokens it
    returns (a class token): give its Linear the reference conv's weights flattened in each order (its other
    parameters, e.g. a class token or positions, zeroed) and see which reproduces the reference's tokens."""
    img_size, P, C, D, B = _ORDER_PROBE
    try:
        module = candidate(img_size, P, C, D)
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    except Exception:
        return None
    if len(linears) != 1 or (linears[0].in_features, linears[0].out_features) != (C * P * P, D):
        return None
    linear = linears[0]
    generator = torch.Generator().manual_seed(20)
    reference = ReferencePatchEmbedding(img_size, P, C, D)
    _randomize(reference, generator)
    weight = reference.proj.weight.detach()  # (D, C, P, P)
    with torch.no_grad():
        if linear.bias is None:
            reference.proj.bias.zero_()
        images = torch.randn(B, C, img_size, img_size, generator=generator)  # (B, C, H, W)
        expected = reference(images)  # (B, N, D)
    N = expected.shape[1]
    module.eval()
    for order, flat in ((_CONV_ORDER, weight.flatten(1)), (_CHANNELS_LAST, weight.permute(0, 2, 3, 1).flatten(1))):
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.zero_()
            linear.weight.copy_(flat)  # (D, C·P·P) in this order
            if linear.bias is not None:
                linear.bias.copy_(reference.proj.bias)
            try:
                tokens = module(images)
            except Exception:
                return None
        if (
            isinstance(tokens, torch.Tensor)
            and tokens.ndim == 3
            and (tokens.shape[0], tokens.shape[2]) == (B, D)
            and tokens.shape[1] >= N
            and torch.allclose(tokens[:, -N:].detach().float(), expected, atol=1e-4, rtol=1e-4)
        ):
            return order, tokens.shape[1] - N
    return None


def _linear_message(candidate) -> str:
    """Why an nn.Linear on patches is not accepted, and whether it computes the Conv2d's map at all."""
    conv_please = (
        "an nn.Conv2d named proj (kernel_size=stride=patch_size): that is the layout of timm's and the paper's "
        "weights, and it patchifies for you."
    )
    found = _linear_patch_order(candidate)
    if found is None:
        return (
            "you used an nn.Linear on flattened patches. With each patch flattened as (channel, row, column) it "
            f"computes the same map as a Conv2d, but the exercise asks for {conv_please}"
        )
    order, extra_tokens = found
    if order == _CONV_ORDER:
        message = (
            f"you used an nn.Linear on flattened patches. It computes the same map, but the exercise asks for "
            f"{conv_please}"
        )
    else:
        message = (
            "your nn.Linear flattens each patch as (row, column, channel) (Tensor.unfold, then permute(0, 2, 3, 4, 1), "
            "as in a popular tutorial): that is not the map a Conv2d computes. A Conv2d's weights, and every "
            "pretrained ViT's, flatten a patch as (channel, row, column), so they would meet the wrong pixels. Use "
            + conv_please
        )
    if extra_tokens:
        message += (
            f" Also, it returns N + {extra_tokens} tokens: the class token and the position embedding belong to the "
            "model, not to the patch embedding, which returns the N patch tokens."
        )
    return message


def _check_proj(module: nn.Module, patch_size: int, in_chans: int, embed_dim: int) -> nn.Conv2d:
    proj = getattr(module, "proj", None)
    if isinstance(proj, nn.Linear) or (proj is None and any(isinstance(m, nn.Linear) for m in module.modules())):
        raise Incorrect(_linear_message(type(module)))
    if proj is None:
        convs = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
        if convs:
            raise Incorrect(f"name the convolution self.proj (yours is called {convs[0]!r}), as timm does.")
        raise Incorrect("your module has no self.proj: create self.proj = nn.Conv2d(...) in __init__.")
    if not isinstance(proj, nn.Conv2d):
        raise Incorrect(f"self.proj should be an nn.Conv2d, got {type(proj).__name__}.")
    P = patch_size
    if tuple(proj.kernel_size) != (P, P) or tuple(proj.stride) != (P, P):
        raise Incorrect(
            f"proj has kernel_size={tuple(proj.kernel_size)} and stride={tuple(proj.stride)}; both must equal the "
            f"patch size ({P}, {P}). A stride smaller than the kernel makes overlapping patches, a larger one "
            "skips pixels."
        )
    if tuple(proj.padding) != (0, 0) and proj.padding != "valid":
        raise Incorrect(f"proj has padding={proj.padding}; patches do not overlap the border: use padding=0.")
    if proj.bias is None:
        raise Incorrect("proj has no bias: the patch projection x·E + b has one (keep Conv2d's default bias=True).")
    if (proj.in_channels, proj.out_channels) != (in_chans, embed_dim):
        raise Incorrect(
            f"proj maps {proj.in_channels} channels to {proj.out_channels}; it must map in_chans={in_chans} "
            f"to embed_dim={embed_dim}."
        )
    return proj


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))


def _check_is_module_class(candidate) -> None:
    if isinstance(candidate, nn.Module):
        raise Incorrect("pass the class itself (e.g. ex.check(MyPatchEmbedding)), not an instance of it.")
    if not isinstance(candidate, type) or not issubclass(candidate, nn.Module):
        raise Incorrect("pass a class that subclasses nn.Module.")


def _instantiate(candidate, img_size, patch_size: int, in_chans: int, embed_dim: int, context: str) -> nn.Module:
    try:
        return candidate(img_size, patch_size, in_chans, embed_dim)
    except NotImplementedError:  # the untouched stub: the exercise is not attempted yet, not wrong
        raise
    except Exception as error:
        raise Incorrect(f"creating your class with {context} raised {type(error).__name__}: {error}") from None


def _forward(module: nn.Module, images: torch.Tensor, context: str):
    before = images.clone()
    try:
        tokens = module(images)
    except NotImplementedError:  # a forward not written yet: the grade says where
        raise
    except Exception as error:
        raise Incorrect(f"with {context}, forward raised {type(error).__name__}: {error}") from None
    if not torch.equal(images, before):
        raise Incorrect("forward changed its input images in place.")
    return tokens


def _check_token_shape(shape: tuple, B: int, N: int, D: int, grid: tuple[int, int], context: str) -> None:
    """Name the usual layout mistakes (transpose missing, grid not flattened) before the generic message."""
    if shape == (B, D, N):
        raise Incorrect(
            f"with {context}, the output has shape {shape} = (B, D, N): the transpose is missing. "
            "proj gives (B, D, H/P, W/P); .flatten(2) makes (B, D, N); .transpose(1, 2) makes (B, N, D)."
        )
    if shape == (B, D, *grid):
        raise Incorrect(
            f"with {context}, the output has shape {shape} = (B, D, H/P, W/P): flatten the grid into a "
            "sequence, .flatten(2).transpose(1, 2)."
        )
    if shape != (B, N, D):
        raise Incorrect(f"with {context}, the output has shape {shape}, expected (B, N, D) = {(B, N, D)}.")


def _check_token_values(
    module: nn.Module, images: torch.Tensor, tokens: torch.Tensor, expected: torch.Tensor, context: str
) -> None:
    """Right shape: compare the values, and recognise the two wrong token orders from the conv output."""
    tokens = tokens.detach().float()
    if torch.allclose(tokens, expected, atol=1e-4, rtol=1e-4):
        return
    conv = module.proj(images).detach()  # (B, D, gh, gw)
    if torch.allclose(tokens, conv.transpose(2, 3).flatten(2).transpose(1, 2), atol=1e-4, rtol=1e-4):
        raise Incorrect(
            f"with {context}, the tokens are in column-major order (down the grid's columns); patchify "
            "takes them row by row: flatten (B, D, H/P, W/P) with .flatten(2), then .transpose(1, 2)."
        )
    if torch.allclose(tokens, conv.reshape(expected.shape), atol=1e-4, rtol=1e-4):  # (B, N, D), channels mixed
        raise Incorrect(
            f"with {context}, you reshaped (B, D, H/P, W/P) straight to (B, N, D), which mixes channels "
            "and positions; use .flatten(2).transpose(1, 2)."
        )
    error = (tokens - expected).abs().max().item()
    raise Incorrect(f"with {context}, the tokens have the right shape but wrong values (max abs error {error:.3g}).")


def _grade_patch_case(candidate, img_size, P: int, C: int, D: int, B: int, generator: torch.Generator) -> None:
    """One configuration: build the candidate, give it the reference's weights, compare the tokens."""
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    context = f"img_size={img_size}, patch_size={P}, in_chans={C}, embed_dim={D}"
    if not isinstance(img_size, int):
        context += " (a non-square image, img_size=(height, width))"
    module = _instantiate(candidate, img_size, P, C, D, context)
    _check_proj(module, P, C, D)
    reference = ReferencePatchEmbedding(img_size, P, C, D)
    _randomize(reference, generator)
    copy_weights(reference, module, "your module")
    images = torch.randn(B, C, height, width, generator=generator)  # (B, C, H, W)
    tokens = _forward(module, images, context)
    expected = reference(images).detach()  # (B, N, D)
    tokens = expect_tensor(tokens, f"with {context}, the output")
    _check_token_shape(tuple(tokens.shape), B, expected.shape[1], D, (height // P, width // P), context)
    _check_token_values(module, images, tokens, expected, context)


def grade_patch_embedding(candidate) -> None:
    _check_is_module_class(candidate)
    generator = torch.Generator().manual_seed(2)
    # (img_size, patch_size, in_chans, embed_dim, batch): N ≠ D in each, so a missing transpose shows.
    cases = [(8, 2, 1, 12, 3), (32, 4, 3, 24, 2), ((12, 20), 4, 3, 8, 2), (16, 8, 2, 5, 1)]
    for img_size, P, C, D, B in cases:
        _grade_patch_case(candidate, img_size, P, C, D, B, generator)


# -- 02.class_token ------------------------------------------------------------------------------


def grade_class_token(candidate) -> None:
    generator = torch.Generator().manual_seed(3)
    for B, N, D in [(3, 5, 4), (1, 16, 8), (2, 1, 6)]:
        # tokens come from the patch embedding, so gradients must flow through them too; a non-leaf copy of a
        # leaf, so that an in-place change is reported as such (not as autograd's error about leaves)
        leaf = torch.randn(B, N, D, generator=generator).requires_grad_()
        tokens = leaf.clone()  # (B, N, D)
        cls_token = torch.randn(1, 1, D, generator=generator).requires_grad_()
        tokens_before, cls_before = tokens.detach().clone(), cls_token.detach().clone()
        context = f"tokens of shape {(B, N, D)}"
        try:
            out = candidate(tokens, cls_token)
        except NotImplementedError:
            raise
        except Exception as error:
            hint = " (expand the (1, 1, D) token to (B, 1, D) before torch.cat)" if B > 1 else ""
            raise Incorrect(f"with {context}, your function raised {type(error).__name__}: {error}{hint}") from None
        if not torch.equal(tokens.detach(), tokens_before) or not torch.equal(cls_token.detach(), cls_before):
            raise Incorrect("your function changed tokens or cls_token in place; build a new tensor with torch.cat.")
        out = expect_tensor(out, f"with {context}, the result")
        shape = tuple(out.shape)
        if shape == (B, N, 2 * D):
            raise Incorrect(
                f"with {context}, the result has shape {shape}: you concatenated along the feature axis; the "
                "class token is one more token, so concatenate along dim=1."
            )
        if shape == (1, N + 1, D) and B > 1:
            raise Incorrect(
                f"with {context}, the result has shape {shape}: keep one sequence per image, (B, N + 1, D)."
            )
        if shape != (B, N + 1, D):
            raise Incorrect(f"with {context}, the result has shape {shape}, expected (B, N + 1, D) = {(B, N + 1, D)}.")
        expected = torch.cat([cls_before.expand(B, 1, D), tokens_before], dim=1)
        if not torch.allclose(out.detach(), expected):
            appended = torch.cat([tokens_before, cls_before.expand(B, 1, D)], dim=1)
            if torch.allclose(out.detach(), appended):
                raise Incorrect(
                    "the class token is at the end; put it first (position 0): the head reads tokens[:, 0]."
                )
            raise Incorrect(
                f"with {context}, the result has the right shape but wrong values: out[:, 0] must be the class "
                "token and out[:, 1:] the patch tokens, unchanged."
            )
        _check_gradients(out, cls_token, leaf, B)


def _check_gradients(out: torch.Tensor, cls_token: torch.Tensor, tokens: torch.Tensor, B: int) -> None:
    """Gradients must reach both inputs, each from its own place in the result: cls_token (a parameter) from
    out[:, 0] of every image, the patch tokens (the patch embedding's output) from out[:, 1:]."""
    grad_cls = grad_tokens = None
    if out.requires_grad:
        grad_cls, grad_tokens = torch.autograd.grad(
            out[:, 0].sum(), [cls_token, tokens], allow_unused=True, retain_graph=True
        )
    if grad_cls is None:
        raise Incorrect(
            "no gradient reaches cls_token (did you use .data, .detach() or torch.tensor(...)?): the class "
            "token is a parameter and must be learned; use cls_token.expand(B, -1, -1)."
        )
    if not torch.allclose(grad_cls, torch.full_like(grad_cls, float(B))):
        raise Incorrect("the gradient to cls_token is wrong: every image must use the same class token.")
    (grad_tokens,) = torch.autograd.grad(out[:, 1:].sum(), [tokens], allow_unused=True)
    if grad_tokens is None:
        raise Incorrect(
            "no gradient reaches the patch tokens (did you use .data, .detach() or torch.tensor(...) on them?): "
            "the patch embedding before this step learns through them; pass tokens to torch.cat as they are."
        )
    if not torch.allclose(grad_tokens, torch.ones_like(grad_tokens)):
        raise Incorrect("the gradient to the patch tokens is wrong: out[:, 1:] must be the tokens, each used once.")


register(
    _ExerciseWithImports(
        id="02.patch_embedding",
        title="Patch embedding as a strided convolution",
        grader=grade_patch_embedding,
        solution_obj=PatchEmbedding,
        hint_text=(
            "In __init__: self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size). "
            "In forward: self.proj(images) is (B, D, H/P, W/P); .flatten(2) gives (B, D, N); .transpose(1, 2) "
            "gives (B, N, D). img_size may be an int or a pair (height, width)."
        ),
    )
)

register(
    Exercise(
        id="02.class_token",
        title="Prepend the class token",
        grader=grade_class_token,
        solution_obj=prepend_class_token,
        hint_text=(
            "cls_token has shape (1, 1, D); cls_token.expand(B, -1, -1) makes it (B, 1, D) without copying (and "
            "gradients still flow to it); torch.cat([cls, tokens], dim=1) puts it in front: (B, 1 + N, D)."
        ),
    )
)
