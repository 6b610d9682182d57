# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 06: the encoder block
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/06_encoder_block.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** the Transformer encoder block of ViT (Dosovitskiy et al. 2021, Eq. 2–3),
#
# $$z'_\ell = z_{\ell-1} + \text{MSA}(\text{LN}(z_{\ell-1})), \qquad z_\ell = z'_\ell + \text{MLP}(\text{LN}(z'_\ell)),$$
#
# from its parts: LayerNorm, a GELU MLP, residual connections. You will compare **pre-norm** (ViT:
# LayerNorm before each branch) with **post-norm** (the original Transformer: LayerNorm after the
# residual sum) by gradient norms and by training an 8-block ViT on handwritten digits, and add
# stochastic depth (DropPath).
#
# **Prerequisites:** lesson 05 (multi-head attention).
#
# **Run time:** 21 s in full mode (most of it the training comparison in section 5) on an Intel Xeon CPU with 2 cores
# (Intel(R) Xeon(R) Processor), idle, the machine that saved these outputs; quick mode
# (`VIT_LESSONS_QUICK=1`) takes a few seconds. GPU: not measured yet (nothing here needs one).

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %%
import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from sklearn.datasets import load_digits
from torch import nn

from vit_lessons.attention import MultiHeadSelfAttention  # lesson 05
from vit_lessons.patches import PatchEmbedding  # lesson 02
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
print(run_banner(device))

# %% [markdown]
# ## 1. Tokens
#
# The coffee-cup photograph from scikit-image, 64×64 pixels, 8×8 patches embedded into 64 tokens
# of width D = 48.

# %% tags=["nbval-check-output"]
photo = torch.from_numpy(data.coffee()).permute(2, 0, 1).float() / 255  # (C, H, W)
image = F.interpolate(photo[None], size=(64, 64), mode="area")  # (B, C, H, W)
with torch.no_grad():
    tokens = PatchEmbedding(img_size=64, patch_size=8, in_chans=3, embed_dim=48)(image)  # (B, N, D)
D = tokens.shape[-1]
print("tokens:", tuple(tokens.shape), "(B, N, D)")

# %% [markdown]
# ## 2. LayerNorm
#
# LayerNorm normalises **each token on its own** over its D features: subtract the token's mean,
# divide by its standard deviation (the biased one, with a small `eps` inside the square root), then
# apply a learned per-feature scale and shift. No statistics are shared across the batch, unlike
# BatchNorm, so it behaves the same in training and evaluation and for any batch size.

# %% tags=["nbval-check-output"]
def layer_norm(x, weight, bias, eps=1e-6):
    mean = x.mean(-1, keepdim=True)  # (B, N, 1): one mean per token
    var = x.var(-1, keepdim=True, unbiased=False)  # (B, N, 1)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias  # (B, N, D)


norm = nn.LayerNorm(D, eps=1e-6)
with torch.no_grad():
    norm.weight.normal_(1, 0.5), norm.bias.normal_(0, 0.5)  # non-trivial scale and shift for the check
    print("normalised:", tuple(layer_norm(tokens, norm.weight, norm.bias).shape))
    print("equal to nn.LayerNorm(D, eps=1e-6):", torch.allclose(layer_norm(tokens, norm.weight, norm.bias), norm(tokens), atol=1e-5))
    plain = layer_norm(tokens, 1.0, 0.0)
print("every token now has mean 0 and std 1:", torch.allclose(plain.mean(-1), torch.zeros(1, 64), atol=1e-5),
      torch.allclose(plain.std(-1, unbiased=False), torch.ones(1, 64), atol=1e-3))

# %% [markdown]
# ViT uses `eps = 1e-6` (PyTorch's default is 1e-5; Hugging Face's ViT uses 1e-12). It only
# matters for tokens whose features barely vary, where eps is not small next to the variance:

# %%
for std in [1.0, 0.01]:
    x = 1 + std * torch.randn(1, 64, D)
    gap = (layer_norm(x, 1.0, 0.0, eps=1e-5) - layer_norm(x, 1.0, 0.0, eps=1e-6)).abs().max().item()
    print(f"token std {std:>5}: largest difference between eps=1e-5 and eps=1e-6 is {gap:.1e}")

# %% [markdown]
# ## 3. The MLP: Linear, GELU, Linear
#
# Attention mixes tokens; the MLP then processes each token on its own: Linear D → 4D, a GELU,
# Linear 4D → D. GELU, $x\,\Phi(x)$ with $\Phi$ the normal CDF, is a smooth ReLU that lets small
# negative values through. The original JAX ViT code used the tanh approximation of GELU (Flax's
# default); PyTorch's `nn.GELU()` and timm use the exact one. The difference is small:

# %%
x = torch.linspace(-4, 4, 801)
gap = (F.gelu(x) - F.gelu(x, approximate="tanh")).abs()
print(f"largest |exact GELU - tanh GELU| on [-4, 4]: {gap.max().item():.1e} at x = {x[gap.argmax()].item():.2f}")
fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
ax.plot(x, F.relu(x), label="ReLU")
ax.plot(x, F.gelu(x), label="GELU (exact)")
ax.set(xlabel="x", ylabel="activation", title="GELU vs ReLU")
ax.legend()
fig.tight_layout()
plt.show()


# %% tags=["nbval-check-output"]
class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, tokens):
        return self.fc2(self.act(self.fc1(tokens)))  # (B, N, D) → (B, N, hidden) → (B, N, D)


mlp = MLP(D, 4 * D)
print("hidden:", tuple(mlp.fc1(tokens).shape), "| out:", tuple(mlp(tokens).shape))

# %% [markdown]
# ## 4. Residuals and the block
#
# Each branch (attention, MLP) **adds** its result to the tokens instead of replacing them:
# `tokens = tokens + branch(norm(tokens))`. The running sum, the *residual stream*, carries the
# input straight through the network, and the gradient flows back along it unchanged. Where the
# LayerNorm sits is the difference between two designs:
#
# - **pre-norm** (ViT, GPT-2 and later): `z = z + branch(LN(z))`. The stream itself is never normalised.
# - **post-norm** (the original Transformer, BERT): `z = LN(z + branch(z))`. Every block renormalises
#   the stream, so the path from output to input passes through L LayerNorms.
#
# The two blocks side by side (`vit_lessons.diagrams.block_diagram`); the blue lines are the
# residual paths:

# %%
from vit_lessons.diagrams import block_diagram

block_diagram()
plt.show()

# %% [markdown]
# One class with a switch, with timm's names (`norm1`, `attn`, `norm2`, `mlp`):


# %%
class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, pre_norm=True):
        super().__init__()
        self.pre_norm = pre_norm
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, tokens):
        if self.pre_norm:  # ViT, Eq. 2-3
            tokens = tokens + self.attn(self.norm1(tokens))
            return tokens + self.mlp(self.norm2(tokens))
        tokens = self.norm1(tokens + self.attn(tokens))  # the original Transformer
        return self.norm2(tokens + self.mlp(tokens))


# %% tags=["nbval-check-output"]
from vit_lessons.blocks import EncoderBlock

block = Block(D, num_heads=4)
library = EncoderBlock(D, num_heads=4)
library.load_state_dict(block.state_dict())  # the same names and shapes
with torch.no_grad():
    print("block:", tuple(tokens.shape), "→", tuple(block(tokens).shape))
    print("pre-norm Block == vit_lessons EncoderBlock:", torch.allclose(block(tokens), library(tokens), atol=1e-6))

# %% [markdown]
# ## 5. Why ViT uses pre-norm
#
# We train the same small ViT twice on scikit-learn's 8×8 digits (1,797 images; 2×2 patches, so
# 16 tokens plus a class token; width 64, 4 heads, **8 blocks**): once with pre-norm blocks, once
# with post-norm blocks, starting from identical weights (post-norm gets no final LayerNorm, its
# last block already ends with one). Adam, no learning-rate warm-up, the same batches.

# %% tags=["nbval-check-output"]
from vit_lessons import VisionTransformer

digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (B, 1, 8, 8)
images = (images - images.mean()) / images.std()
labels = torch.tensor(digits.target)
order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
train_idx, test_idx = order[:1400], order[1400:]

torch.manual_seed(0)
template = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=64, depth=8, num_heads=4, mlp_ratio=2.0)


def make_vit(pre_norm):
    """The template ViT with its blocks replaced by ours (same initial weights)."""
    model = copy.deepcopy(template)
    blocks = [Block(64, 4, 2.0, pre_norm=pre_norm) for _ in model.blocks]
    for mine, original in zip(blocks, model.blocks):
        mine.load_state_dict(original.state_dict())
    model.blocks = nn.Sequential(*blocks)
    if not pre_norm:
        model.norm = nn.Identity()
    return model


print("digits:", tuple(images.shape), "| train", len(train_idx), "| test", len(test_idx))
print("tokens per image:", tuple(make_vit(True).forward_features(images[:2]).shape))

# %% [markdown]
# **Gradients at initialisation.** One batch of 256 images, the gradient norm of each block's
# parameters, first block (nearest the input) to last:

# %%
def block_gradient_norms(model):
    model.zero_grad()
    batch = train_idx[:256]
    F.cross_entropy(model(images[batch]), labels[batch]).backward()
    return [torch.cat([p.grad.flatten() for p in b.parameters()]).norm().item() for b in model.blocks]


grad_norms = {name: block_gradient_norms(make_vit(pre)) for name, pre in [("pre-norm", True), ("post-norm", False)]}
for name, norms in grad_norms.items():
    print(f"{name:>9}: " + " ".join(f"{g:.3f}" for g in norms))
fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
for name, norms in grad_norms.items():
    ax.semilogy(range(1, 9), norms, "o-", label=name)
ax.set(xlabel="block (1 = nearest the input)", ylabel="gradient norm", title="Per-block gradient norm at initialisation")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **Training.** Two learning rates, the same 8-block models, 150 steps of batch 64 (10 in quick
# mode, too few to show anything: run the full mode).

# %%
def train(pre_norm, lr, steps, batch_size=64, seed=0):
    torch.manual_seed(seed)
    model = make_vit(pre_norm)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)  # the same batches for every run
    losses = []
    for _ in range(steps):
        batch = train_idx[torch.randint(len(train_idx), (batch_size,), generator=generator)]
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = (model(images[test_idx]).argmax(-1) == labels[test_idx]).float().mean().item()
    return losses, accuracy


steps = 10 if is_quick() else 150
runs = {}
for lr in [1e-3, 1e-2]:
    for name, pre in [("pre-norm", True), ("post-norm", False)]:
        runs[name, lr] = train(pre, lr, steps)
        losses, accuracy = runs[name, lr]
        print(f"lr {lr:g}, {name:>9}: mean loss of the last 20 steps {np.mean(losses[-20:]):.3f}, test accuracy {accuracy:.1%}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), dpi=80, sharey=True)
for ax, lr in zip(axes, [1e-3, 1e-2]):
    for name in ["pre-norm", "post-norm"]:
        losses = np.array(runs[name, lr][0])
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")  # 10-step moving average
        ax.plot(range(10, len(losses) + 1), smooth, label=name)
    ax.axhline(math.log(10), color="gray", ls=":", label="chance (ln 10)")
    ax.set(xlabel="step", title=f"Adam lr = {lr:g}, no warm-up")
    ax.legend(fontsize=8)
axes[0].set_ylabel("training loss (10-step average)")
fig.tight_layout()
plt.show()

# %% [markdown]
# What the saved full-mode run shows (one seed, one small task, 8 blocks: an illustration, not a law):
#
# - **At lr = 1e-3** both versions train, and post-norm is not worse here: its loss fell a little
#   faster (last 20 steps 0.98 against 1.09), its test accuracy ended 1.3 points lower. With 8
#   blocks and Adam, post-norm is not broken.
# - **At lr = 1e-2, without warm-up**, the post-norm model never left chance level (loss ln 10 ≈
#   2.30 throughout); the pre-norm model sat at chance for about 90 steps, then its loss fell to
#   about 1.95. 1e-2 is too high for both; only post-norm never started.
# - **Gradients at initialisation** differ in shape (the plot). In the pre-norm model every block
#   receives a gradient of the same order (0.98 at the first block down to 0.45 at the last). In
#   the post-norm model the first block, whose LayerNorms renormalise the small initial embeddings,
#   gets 0.78 and the seven others about 0.04 each: the LayerNorms on the path, not the depth, set
#   the gradient sizes.
#
# What this does **not** show: why ViT uses pre-norm. Xiong et al. (2020, "On Layer Normalization in
# the Transformer Architecture") analyse deep post-norm Transformers, whose gradients near the
# *output* are large at initialisation, which is why they need a learning-rate warm-up; the profile
# measured here is a different one (the first block's gradient is the large one), and one seed at
# depth 8 cannot carry a claim about depth 12 to 32. What it does show is the practical risk: without
# warm-up, a post-norm stack can fail to start where a pre-norm one still learns. ViT (12 to 32
# blocks) uses pre-norm, with a final LayerNorm after the last block, and trains with warm-up anyway.
#
# ## 6. Stochastic depth (DropPath)
#
# Deep ViTs (DeiT and later) regularise with **stochastic depth** (Huang et al. 2016): during
# training, each sample skips a residual branch entirely with probability p, so `z + branch(z)`
# becomes just `z` for that sample. The kept branches are scaled by 1/(1 − p) so the expected
# output is unchanged, and at evaluation nothing is dropped. One coin per **sample**, not per
# element (that would be ordinary dropout):

# %%
def drop_path(branch, drop_prob, training=True):
    if drop_prob == 0.0 or not training:
        return branch
    keep_prob = 1 - drop_prob
    keep = branch.new_empty(branch.shape[0], *([1] * (branch.ndim - 1))).bernoulli_(keep_prob)  # (B, 1, 1)
    return branch * keep / keep_prob


torch.manual_seed(0)
branch = torch.ones(8, 3, 4)  # 8 samples
dropped = drop_path(branch, 0.25)
print("per sample, all tokens and features share one coin:", [round(v, 3) for v in dropped[:, 0, 0].tolist()])
print("eval mode returns the branch unchanged:", torch.equal(drop_path(branch, 0.25, training=False), branch))
many = torch.stack([drop_path(torch.ones(1000, 1, 1), 0.25) for _ in range(20)])
print(f"mean over 20,000 samples: {many.mean().item():.3f} (expected 1)")

# %% tags=["nbval-check-output"]
from vit_lessons.blocks import DropPath

module = DropPath(0.25).train()
torch.manual_seed(1)
mine = drop_path(tokens, 0.25)
torch.manual_seed(1)
print("drop_path == vit_lessons DropPath (same random draw):", torch.equal(mine, module(tokens)))
rates = torch.linspace(0, 0.1, 8).tolist()  # timm: the rate grows linearly with depth
print("drop-path rate per block for drop_path_rate=0.1, depth 8:", [round(r, 3) for r in rates])

# %% [markdown]
# In `vit_lessons` (as in timm) the block applies it as `tokens + drop_path1(attn(norm1(tokens)))`,
# and `VisionTransformer(drop_path_rate=...)` spreads the rate linearly over the blocks: the deeper
# the block, the more often it is skipped.
#
# ## Summary
#
# - LayerNorm normalises each token over its features (eps = 1e-6 in ViT); the MLP is Linear → GELU
#   → Linear with a 4× wider hidden layer; residuals add each branch to the stream.
# - ViT's block is **pre-norm**: `z + MSA(LN(z))`, then `z + MLP(LN(z))`. It equals `vit_lessons`'
#   `EncoderBlock`. On our 8-block digits ViT, post-norm failed at a learning rate where pre-norm
#   still trained (section 5).
# - DropPath skips whole residual branches per sample in training and rescales the rest.
#
# ## Exercises
#
# Fill in each stub and run the cell after it; `ex.hint()` and `ex.solution()` help.
#
# **1. The encoder block.** Write `MyBlock(dim, num_heads, mlp_ratio=4.0)` with `norm1`, `attn`
# (with `qkv` and `proj`: you may use `MultiHeadSelfAttention` from lesson 05), `norm2` and `mlp`
# (with `fc1` and `fc2`), pre-norm, exact GELU, LayerNorm eps 1e-6. The check loads random weights
# (LayerNorm scales and shifts included) and tests unit-scale, large and small-variance tokens.

# %%
# EXERCISE 06.encoder_block: MyBlock
class MyBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        raise NotImplementedError  # your code here

    def forward(self, tokens):
        raise NotImplementedError  # your code here


# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("06.encoder_block")
ex.check(MyBlock)

# %% [markdown]
# **2. DropPath.** Write `my_drop_path(tokens, drop_prob, training=True)` without looking at
# section 6: one coin per sample, rescale the kept ones, identity when not training.

# %%
# EXERCISE 06.drop_path: my_drop_path
def my_drop_path(tokens, drop_prob, training=True):
    raise NotImplementedError  # your code here


# %% tags=["nbval-check-output"]
ex = get_exercise("06.drop_path")
ex.check(my_drop_path)

# %% [markdown]
# **3. Try this.** In section 5, train with `lr=3e-3`, or with 4 and 12 blocks (change `depth`
# in `template`). Where does post-norm start to fail? Then add a warm-up (multiply the learning
# rate by `min(1, step / 50)`): does post-norm recover?
#
# **Next:** [lesson 07](07_vision_transformer.ipynb) stacks the blocks into the whole Vision Transformer.
