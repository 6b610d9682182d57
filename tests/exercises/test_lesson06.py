"""Bug zoo for 06.encoder_block and 06.drop_path (run by test_zoos.py); the tiny mistakes (LayerNorm eps,
tanh GELU) are shown to be detectable at all, and the library's block and DropPath pass."""

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_lessons.attention import MultiHeadSelfAttention
from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("06.encoder_block")


class Configurable(nn.Module):
    """A block with one switch per typical mistake."""

    eps = 1e-6
    eps2 = None  # norm2's eps, when it differs from norm1's
    act = "gelu"
    post_norm = False
    norm1_twice = False
    attn_residual = True
    mlp_residual = True
    hidden_ratio = None

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        hidden = int(dim * (self.hidden_ratio or mlp_ratio))
        self.norm1 = nn.LayerNorm(dim, eps=self.eps)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=self.eps2 or self.eps)
        acts = {"gelu": nn.GELU(), "relu": nn.ReLU(), "tanh": nn.GELU(approximate="tanh")}
        self.mlp = nn.Sequential(
            OrderedDict(fc1=nn.Linear(dim, hidden), act=acts[self.act], fc2=nn.Linear(hidden, dim))
        )

    def forward(self, tokens):
        norm2 = self.norm1 if self.norm1_twice else self.norm2
        if self.post_norm:
            tokens = self.norm1(tokens + self.attn(tokens))
            return norm2(tokens + self.mlp(tokens))
        attended = self.attn(self.norm1(tokens))
        tokens = tokens + attended if self.attn_residual else attended
        mlp_out = self.mlp(norm2(tokens))
        return tokens + mlp_out if self.mlp_residual else mlp_out


class Correct(Configurable):
    pass


class PostNorm(Configurable):
    post_norm = True


class Norm1Twice(Configurable):
    norm1_twice = True


class ReLU(Configurable):
    act = "relu"


class TanhGELU(Configurable):
    act = "tanh"


class NoAttnResidual(Configurable):
    attn_residual = False


class NoMlpResidual(Configurable):
    mlp_residual = False


class Eps1e5(Configurable):
    eps = 1e-5


class Norm2Eps1e5(Configurable):
    eps2 = 1e-5  # norm1 right, norm2 PyTorch's default


class Norm1Eps1e5(Configurable):
    eps, eps2 = 1e-5, 1e-6  # norm2 right, norm1 PyTorch's default


class ResidualAttention(MultiHeadSelfAttention):
    """An attention module that adds its own residual, as seed 001's MultiHeadAttention wrapper does."""

    def forward(self, tokens):
        return tokens + super().forward(tokens)


class ResidualNormAttention(MultiHeadSelfAttention):
    """Seed 001's MultiHeadAttention wrapper: the residual and a LayerNorm inside, norm(attention + query)."""

    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens):
        return self.norm(super().forward(tokens) + tokens)


class DoubleResidual(Configurable):
    """A pre-norm block whose attention module already adds the residual: tokens + (x + MSA(x))."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__(dim, num_heads, mlp_ratio)
        self.attn = ResidualAttention(dim, num_heads)


class Seed001Block(Configurable):
    """Seed 001's TransformerBlock (post-norm, x = norm1(x + attention(x))) on an attention that adds the
    residual again; its wrapper's LayerNorm left out so the parameter names match."""

    post_norm = True

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__(dim, num_heads, mlp_ratio)
        self.attn = ResidualAttention(dim, num_heads)


class Seed001AttentionWrapper(Configurable):
    """Seed 001's TransformerBlock with its MultiHeadAttention wrapper: residual and LayerNorm inside attn."""

    post_norm = True

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__(dim, num_heads, mlp_ratio)
        self.attn = ResidualNormAttention(dim, num_heads)


class RoundedHidden(Configurable):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__(dim, num_heads, mlp_ratio)
        hidden = round(dim * mlp_ratio)  # timm truncates: int(dim * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(dim, hidden), act=nn.GELU(), fc2=nn.Linear(hidden, dim)))


class ForwardNotWritten(Configurable):
    def forward(self, tokens):
        raise NotImplementedError  # your code here


class FixedHidden(Configurable):
    hidden_ratio = 4.0  # ignores mlp_ratio


class NoNorm2(Configurable):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__(dim, num_heads, mlp_ratio)
        del self.norm2

    def forward(self, tokens):
        tokens = tokens + self.attn(self.norm1(tokens))
        return tokens + self.mlp(self.norm1(tokens))


class SequentialMlp(Configurable):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__(dim, num_heads, mlp_ratio)
        self.mlp = nn.Sequential(self.mlp.fc1, nn.GELU(), self.mlp.fc2)  # names mlp.0, mlp.2


class InPlaceResidual(Configurable):
    def forward(self, tokens):
        tokens += self.attn(self.norm1(tokens))
        tokens += self.mlp(self.norm2(tokens))
        return tokens


ENCODER_BLOCK_BUGS = {
    PostNorm: "post-norm",
    Norm1Twice: "norm2 is unused",
    ReLU: "ReLU",
    TanhGELU: "tanh approximation",
    NoAttnResidual: "attention branch has no residual",
    NoMlpResidual: "MLP branch has no residual",
    Eps1e5: r"small-variance tokens \(std 0.01\).*eps=1e-5",
    FixedHidden: r"wrong MLP hidden size for dim=32, mlp_ratio=2.0.*expected int\(dim \* mlp_ratio\) = 64",
    NoNorm2: "there is no norm2",
    SequentialMlp: r"parameter names differ .*mlp\.0\.weight",
    InPlaceResidual: "in place",
    Norm2Eps1e5: r"norm2 uses eps=1e-5.*every LayerNorm",
    Norm1Eps1e5: r"norm1 uses eps=1e-5.*every LayerNorm",
    DoubleResidual: r"adds the residual twice.*attn already returns its input plus",
    Seed001Block: r"post-norm.*adds the residual twice",
    Seed001AttentionWrapper: r"LayerNorm inside attn \(attn\.norm\).*residual",
    RoundedHidden: r"fc1 maps to 73 features, expected int\(dim \* mlp_ratio\) = 72",
    ForwardNotWritten: r"unimplemented branch.*of forward",
}


def test_eps_only_shows_on_small_variance_tokens():
    """The reason the grader has a small-variance input: eps 1e-5 vs 1e-6 is invisible otherwise."""
    torch.manual_seed(0)
    unit, small = torch.randn(4, 64), 1 + 0.01 * torch.randn(4, 64)
    for tokens, visible in ((unit, False), (10 * unit, False), (small, True)):
        difference = (F.layer_norm(tokens, (64,), eps=1e-5) - F.layer_norm(tokens, (64,), eps=1e-6)).abs().max()
        assert (difference > 1e-3) == visible, (tokens.std(), difference)


def test_correct_block_and_library_block_pass(ex):
    from vit_lessons.blocks import EncoderBlock

    assert ex.grade(Correct).status == "correct"
    assert ex.grade(EncoderBlock).status == "correct"


# 06.drop_path


def dropout_elementwise(tokens, drop_prob, training=True):
    return F.dropout(tokens, drop_prob, training)


def no_rescale(tokens, drop_prob, training=True):
    if not training or drop_prob == 0:
        return tokens
    return tokens * (torch.rand(tokens.shape[0], 1, 1) >= drop_prob)


def drops_in_eval(tokens, drop_prob, training=True):
    keep = torch.rand(tokens.shape[0], 1, 1) >= drop_prob
    return tokens * keep / (1 - drop_prob)


def keeps_with_drop_prob(tokens, drop_prob, training=True):
    if not training or drop_prob == 0:
        return tokens
    keep = torch.rand(tokens.shape[0], 1, 1) < drop_prob
    return tokens * keep / drop_prob


def in_place(tokens, drop_prob, training=True):
    if not training or drop_prob == 0:
        return tokens
    return tokens.mul_((torch.rand(tokens.shape[0], 1, 1) >= drop_prob) / (1 - drop_prob))


def reseeds_inside(tokens, drop_prob, training=True):
    if not training or drop_prob == 0:
        return tokens
    torch.manual_seed(0)  # "reproducible": every call draws the same mask, and the caller's stream is reset
    keep = torch.rand(tokens.shape[0], 1, 1) >= drop_prob
    return tokens * keep / (1 - drop_prob)


def private_generator(tokens, drop_prob, training=True):
    if not training or drop_prob == 0:
        return tokens
    generator = torch.Generator().manual_seed(0)
    keep = torch.rand(tokens.shape[0], 1, 1, generator=generator) >= drop_prob
    return tokens * keep / (1 - drop_prob)


def reseeds_from_the_clock(tokens, drop_prob, training=True):
    if not training or drop_prob == 0:
        return tokens
    torch.seed()  # a fresh, non-deterministic seed: the masks differ, but the caller's seed no longer counts
    keep = torch.rand(tokens.shape[0], 1, 1) >= drop_prob
    return tokens * keep / (1 - drop_prob)


def forgotten_training_branch(tokens, drop_prob, training=True):
    if not training or drop_prob == 0.0:
        return tokens
    raise NotImplementedError  # the training branch, for later


DROP_PATH_BUGS = {
    dropout_elementwise: "element-wise dropout",
    no_rescale: "not rescaled",
    drops_in_eval: "when not training",
    keeps_with_drop_prob: "70% of the samples were dropped",
    in_place: "in place",
    reseeds_inside: r"same samples.*reseed",
    private_generator: r"same samples.*reseed",
    reseeds_from_the_clock: "resets torch's global random generator",
    forgotten_training_branch: r"unimplemented branch.*forgotten_training_branch.*raise NotImplementedError",
}

ZOO = {"06.encoder_block": ENCODER_BLOCK_BUGS, "06.drop_path": DROP_PATH_BUGS}


def test_drop_path_from_another_source_of_randomness_is_correct():
    import numpy as np

    rng = np.random.default_rng(0)

    def numpy_coins(tokens, drop_prob, training=True):
        if not training or drop_prob == 0:
            return tokens
        keep = torch.from_numpy(rng.random((tokens.shape[0], 1, 1)) >= drop_prob)
        return tokens * keep / (1 - drop_prob)

    assert get_exercise("06.drop_path").grade(numpy_coins).status == "correct"


def test_grading_drop_path_leaves_the_callers_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_exercise("06.drop_path").grade(reseeds_inside)
    assert torch.equal(torch.rand(3), expected)


def test_library_drop_path_is_correct():
    from vit_lessons.blocks import DropPath

    def library(tokens, drop_prob, training=True):
        return DropPath(drop_prob).train(training)(tokens)

    assert get_exercise("06.drop_path").grade(library).status == "correct"
