"""Bug zoo for 02.patch_embedding and 02.class_token (run by test_zoos.py), and the answers the graders
accept or refuse besides it."""

import pytest
import torch
from torch import nn

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("02.patch_embedding")


class _Base(nn.Module):
    kernel_extra = 0

    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2)


class NoTranspose(_Base):
    def forward(self, images):
        return self.proj(images).flatten(2)  # (B, D, N)


class NoFlatten(_Base):
    def forward(self, images):
        return self.proj(images)  # (B, D, H/P, W/P)


class ColumnMajor(_Base):
    def forward(self, images):
        return self.proj(images).transpose(2, 3).flatten(2).transpose(1, 2)


class PlainReshape(_Base):
    def forward(self, images):
        out = self.proj(images)
        return out.reshape(out.shape[0], -1, out.shape[1])  # mixes channels and positions


class Overlapping(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=max(1, patch_size // 2))


class KernelOnly(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size)  # stride 1


class NoBias(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=False)


class LinearProjection(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Linear(in_chans * patch_size**2, embed_dim)

    def forward(self, images):
        from vit_lessons.patches import patchify

        return self.projection(patchify(images, self.patch_size))


class ConvNamedDifferently(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images):
        return self.conv(images).flatten(2).transpose(1, 2)


class SquareOnly(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.num_patches = (img_size // patch_size) ** 2  # fails for a (height, width) pair


class RgbOnly(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, 3, embed_dim)


class WithClassToken(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))


class Seed001PatchEmbedding(nn.Module):
    """Seed 001's PatchEmbedding with the exercise's signature: Tensor.unfold, then permute(0, 2, 3, 4, 1),
    which flattens each patch as (row, column, channel), an nn.Linear named projection, and the class token
    and positions (torch.randn) inside."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.embed_size = embed_dim
        num_patches = (img_size // patch_size) ** 2
        patch_dim = in_chans * patch_size**2
        self.projection = nn.Linear(patch_dim, embed_dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.position_embeddings = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim))
        self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        B, C, H, W = x.shape
        assert H % self.patch_size == 0 and W % self.patch_size == 0, "Image dimensions must be divisible by patch size"
        x = x.unfold(2, self.patch_size, self.patch_size).unfold(3, self.patch_size, self.patch_size)
        x = x.reshape(B, C, -1, self.patch_size, self.patch_size)
        x = x.permute(0, 2, 3, 4, 1).reshape(B, -1, C * self.patch_size**2)
        x = self.projection(x)  # (B, N, D)
        cls_tokens = self.cls_token.expand(B, -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)  # (B, N+1, D)
        x += self.position_embeddings
        x = self.dropout(x)
        return x


class ForwardNotWritten(_Base):
    def forward(self, images):
        raise NotImplementedError  # your code here


PATCH_EMBEDDING_BUGS = {
    NoTranspose: r"\(B, D, N\): the transpose is missing",
    NoFlatten: r"\(B, D, H/P, W/P\)",
    ColumnMajor: "column-major",
    PlainReshape: "mixes channels and positions",
    Overlapping: "overlapping patches",
    KernelOnly: r"stride=\(1, 1\)",
    NoBias: "no bias",
    LinearProjection: "nn.Linear",
    ConvNamedDifferently: r"self.proj \(yours is called 'conv'\)",
    SquareOnly: r"non-square.*raised TypeError",
    RgbOnly: "in_chans=1",
    WithClassToken: r"unexpected parameters \['cls_token'\]",
    Seed001PatchEmbedding: r"flattens each patch as \(row, column, channel\).*not the map a Conv2d computes",
    ForwardNotWritten: r"unimplemented branch.*of forward",
}


def test_instance_instead_of_class(ex):
    result = ex.grade(_Base(8, 2, 1, 4))
    assert result.status == "incorrect" and "class itself" in result.message


def test_minimal_correct_class_passes(ex):
    assert ex.grade(_Base).correct, ex.grade(_Base)


class WithBuffer(_Base):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.register_buffer("patch_size", torch.tensor(patch_size))  # saved in the state dict


def test_an_extra_buffer_is_accepted(ex):
    # 05 and 06 accept buffers too: a buffer is not a parameter the reference weights must fill.
    assert ex.grade(WithBuffer).correct, ex.grade(WithBuffer)


def test_a_linear_on_patches_in_conv_order_is_told_it_computes_the_same_map(ex):
    result = ex.grade(LinearProjection)
    assert result.status == "incorrect" and "It computes the same map" in result.message, result


def test_reference_solution_brings_its_own_imports(ex):
    namespace = {}
    exec(ex.solution_source("Mine"), namespace)  # self-contained: imports included in the source
    assert issubclass(namespace["Mine"], nn.Module)  # test_zoos.py grades it


# -- 02.class_token ------------------------------------------------------------------------------


def appended(tokens, cls_token):
    return torch.cat([tokens, cls_token.expand(tokens.shape[0], -1, -1)], dim=1)


def feature_axis(tokens, cls_token):
    return torch.cat([cls_token.expand(tokens.shape[0], tokens.shape[1], -1), tokens], dim=-1)


def no_expand(tokens, cls_token):
    return torch.cat([cls_token, tokens], dim=1)


def detached(tokens, cls_token):
    return torch.cat([cls_token.data.expand(tokens.shape[0], -1, -1), tokens], dim=1)


def detached_tokens(tokens, cls_token):
    return torch.cat([cls_token.expand(tokens.shape[0], -1, -1), tokens.detach()], dim=1)


def changes_tokens_in_place(tokens, cls_token):
    tokens.add_(1.0)
    return torch.cat([cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)


def replaces_first(tokens, cls_token):
    out = tokens.clone()
    out[:, 0] = cls_token[:, 0]
    return out


CLASS_TOKEN_BUGS = {
    appended: "at the end",
    feature_axis: "feature axis",
    no_expand: r"expand the \(1, 1, D\) token",
    detached: "no gradient reaches cls_token",
    detached_tokens: "no gradient reaches the patch tokens",
    changes_tokens_in_place: "changed tokens or cls_token in place",
    replaces_first: r"expected \(B, N \+ 1, D\)",
}

ZOO = {"02.patch_embedding": PATCH_EMBEDDING_BUGS, "02.class_token": CLASS_TOKEN_BUGS}


def test_class_token_repeat_is_also_correct():
    def by_repeat(tokens, cls_token):
        return torch.cat([cls_token.repeat(tokens.shape[0], 1, 1), tokens], dim=1)

    ex = get_exercise("02.class_token")
    assert ex.grade(by_repeat).correct, ex.grade(by_repeat)
