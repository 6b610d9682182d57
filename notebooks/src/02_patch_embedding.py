# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 02: patch embedding and the class token
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/02_patch_embedding.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** the first layer of a ViT. Each flattened patch (C·P·P numbers) is mapped
# by one shared linear projection E to a token of width D, and a learned class token is put in
# front of the sequence (Dosovitskiy et al. 2021, Eq. 1: z₀ = [x_class; x¹E; …; xᴺE] + E_pos).
# You will see that "patchify, then `Linear`" and a `Conv2d` with kernel = stride = P are the same
# map, which is why every ViT implementation writes it as a convolution. Shapes:
# (B, C, H, W) → (B, N, D) → (B, N+1, D).
#
# **Prerequisites:** lesson 01 (patchify); `nn.Linear`, `nn.Conv2d`, `nn.Parameter`.
#
# **Run time:** 3 s in full mode on an Intel Xeon CPU with 2 cores
# (Intel(R) Xeon(R) Processor), idle, the machine that saved these outputs; quick mode
# (`VIT_LESSONS_QUICK=1`) takes a few seconds. GPU: not measured yet (nothing here needs one).

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from vit_lessons.patches import patchify
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
plt.rcParams["figure.dpi"] = 80
print(run_banner(device))

# %% [markdown]
# ## A batch of real images
#
# Three photographs from scikit-image (astronaut, cat, coffee), each centre-cropped to a square
# and resized to 224 × 224, plus the astronaut mirrored: a batch of four, (B, C, H, W).

# %% tags=["nbval-check-output"]
def load(image_hwc: np.ndarray, size: int = 224) -> torch.Tensor:
    """uint8 (H, W, C) → float (C, size, size) in [0, 1], centre-cropped to a square first."""
    height, width = image_hwc.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = torch.from_numpy(image_hwc[top : top + side, left : left + side]).permute(2, 0, 1).float() / 255
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)


astronaut = load(data.astronaut())
images = torch.stack([astronaut, load(data.chelsea()), load(data.coffee()), astronaut.flip(-1)])  # (B, C, H, W)
B, C, H, W = images.shape
P, D = 16, 192  # patch size and embedding width of ViT-Ti/16
print("images:", tuple(images.shape))

# %% [markdown]
# ## Step 1: patches, then a linear projection
#
# Lesson 01 gave us (B, N, C·P·P). A transformer works at a fixed width D (192 for ViT-Ti, 768
# for ViT-B), so every patch vector goes through the same learned linear map, 768 → D.

# %% tags=["nbval-check-output"]
patches = patchify(images, P)  # (B, N, C·P·P)
linear = nn.Linear(C * P * P, D)  # E and its bias, shared by all patches
tokens_linear = linear(patches)  # (B, N, D)
print("patches:", tuple(patches.shape))
print("weight: ", tuple(linear.weight.shape), "bias:", tuple(linear.bias.shape))
print("tokens: ", tuple(tokens_linear.shape))

# %% [markdown]
# ## Step 2: the same map as a strided convolution
#
# A `Conv2d(C, D, kernel_size=P, stride=P)` computes, at each grid cell, a dot product of each of
# its D filters (C, P, P) with one patch, plus a bias: exactly the linear layer, with the weight
# reshaped. Because patchify orders each patch vector (channel, row, column), the linear weight
# (D, C·P·P) *is* the conv weight (D, C, P, P), flattened.

# %% tags=["nbval-check-output"]
conv = nn.Conv2d(C, D, kernel_size=P, stride=P)
with torch.no_grad():
    conv.weight.copy_(linear.weight.reshape(D, C, P, P))  # (D, C·P·P) → (D, C, P, P)
    conv.bias.copy_(linear.bias)
feature_map = conv(images)  # (B, D, H/P, W/P)
tokens_conv = feature_map.flatten(2).transpose(1, 2)  # (B, D, N) → (B, N, D)
print("conv weight:", tuple(conv.weight.shape))
print("feature map:", tuple(feature_map.shape))
print("tokens:     ", tuple(tokens_conv.shape))
print("same as patchify + Linear (to 1e-5):", torch.allclose(tokens_conv, tokens_linear, atol=1e-5))

# %% [markdown]
# Two details in that cell are where implementations go wrong. `flatten(2)` turns the 14 × 14 grid
# into 196 positions row by row, the order patchify uses; and `transpose(1, 2)` puts the token
# axis before the feature axis. Forget the transpose and you get (B, D, N), which a model with
# N = D would even accept silently.
#
# Why the convolution? It is the layout of published weights (`patch_embed.proj.weight` in timm
# has shape (D, C, P, P)), and it is one call with no reshaping in your code. Which version is
# faster depends on the hardware and the library: the convolution skips the copy that `patchify`
# makes, the `Linear` is one large matrix product. The timing below is from the run that saved this
# notebook, on the CPU named in the header; timings of a few milliseconds vary, so compare with yours.

# %%
def best_time(fn, repeats=5):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


with torch.no_grad():
    t_linear = best_time(lambda: linear(patchify(images, P)))
    t_conv = best_time(lambda: conv(images).flatten(2).transpose(1, 2))
print(f"patchify + Linear: {t_linear * 1e3:.2f} ms   Conv2d: {t_conv * 1e3:.2f} ms   (batch of {B}, D={D})")

# %% [markdown]
# ## What a linear patch projection can keep
#
# The projection squeezes 768 pixel values into D numbers. How much of a patch survives depends on
# which directions E keeps. A trained E is not available offline here, but principal component
# analysis (PCA) of real patches shows what the best linear map of a given width keeps (we use
# every 16×16 patch at a stride of 8 pixels, to have more patches than dimensions): the
# paper's Figure 7 shows that the leading principal components of a trained ViT's E look like
# these smooth, low-frequency patterns.

# %%
# All 16×16 patches at a stride of 8 pixels from the three different photos: (M, C·P·P)
all_patches = F.unfold(images[:3], kernel_size=P, stride=P // 2).transpose(1, 2).reshape(-1, C * P * P)
centred = all_patches - all_patches.mean(0)
variances, directions = torch.linalg.eigh(centred.T @ centred)  # ascending; columns are directions
variances, components = variances.flip(0), directions.flip(1).T  # (768,), (768, 768): largest first, one per row
explained = variances.cumsum(0) / variances.sum()
print(f"{len(all_patches)} patches of 768 values; variance kept by the best linear map to D dimensions:")
for width in [8, 32, 64, 192, 384]:
    print(f"  D = {width:3d}: {explained[width - 1].item():.1%}")

# %%
fig, axes = plt.subplots(2, 8, figsize=(10, 3.3))
for index, ax in enumerate(axes.flat):
    component = components[index].reshape(C, P, P).permute(1, 2, 0)  # (P, P, C)
    component = (component - component.min()) / (component.max() - component.min())
    ax.imshow(component.numpy())
    ax.set_title(f"PC {index + 1}", fontsize=8)
    ax.axis("off")
fig.suptitle("leading principal components of 16×16 RGB patches (each rescaled to [0, 1])")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Step 3: the class token
#
# ViT classifies from one extra token, `x_class`, borrowed from BERT's `[CLS]`: a learned vector
# (1, 1, D) put at position 0 of every sequence. It starts the same for every image; through
# attention it gathers information from the patches, and the classifier reads it at the end
# (lesson 07). `expand` makes B views of it without copying, and gradients from all B copies
# flow back to the one parameter.

# %% tags=["nbval-check-output"]
cls_token = nn.Parameter(torch.zeros(1, 1, D))  # (1, 1, D), learned
nn.init.trunc_normal_(cls_token, std=0.02)
cls = cls_token.expand(B, -1, -1)  # (B, 1, D), a view
sequence = torch.cat([cls, tokens_conv], dim=1)  # (B, 1 + N, D)
print("class token:", tuple(cls_token.shape), "-> expanded:", tuple(cls.shape))
print("sequence:   ", tuple(sequence.shape))

# %% [markdown]
# The whole path, (B, C, H, W) → (B, N, D) → (B, N+1, D):

# %% tags=["nbval-check-output"]
for name, tensor in [("images", images), ("patch tokens", tokens_conv), ("with class token", sequence)]:
    print(f"{name:>17}: {tuple(tensor.shape)}")
print("same class token in every image:", all(torch.equal(sequence[b, 0], sequence[0, 0]) for b in range(B)))

# %% [markdown]
# The class token is one of two common ways to get one vector per image. The other is to average
# the patch tokens at the end (`global_pool="avg"` in `vit_lessons`, as in many later models). The
# course's ViT uses the class token, as the paper does; lesson 08's CPU recipe averages instead.
#
# ## Parameters
#
# The patch embedding is small: D·(C·P·P) weights plus D biases, the class token D more.

# %% tags=["nbval-check-output"]
for name, dim, patch in [("ViT-Ti/16", 192, 16), ("ViT-B/16", 768, 16), ("ViT-B/32", 768, 32), ("ViT-H/14", 1280, 14)]:
    embed = nn.Conv2d(3, dim, patch, stride=patch)
    print(f"{name:9}: patch embedding {sum(p.numel() for p in embed.parameters()):>9,} + class token {dim:,}")

# %% [markdown]
# ## The `vit_lessons` version
#
# `vit_lessons.patches.PatchEmbedding` is the conv version with checks; its convolution is named
# `proj` as in timm, so pretrained weights load. Copy our conv into it and compare. Then the
# class-token step of the full model, `VisionTransformer.embed`, with position embeddings off
# (`pos_embed="none"`, lesson 03 adds them).

# %% tags=["nbval-check-output"]
from vit_lessons import create_model
from vit_lessons.patches import PatchEmbedding

patch_embed = PatchEmbedding(img_size=224, patch_size=P, in_chans=C, embed_dim=D)
patch_embed.proj.load_state_dict(conv.state_dict())
assert torch.equal(patch_embed(images), tokens_conv)

model = create_model("vit_tiny_patch16_224", pos_embed="none", depth=1).eval()  # embed() does not use the blocks
model.patch_embed.load_state_dict(patch_embed.state_dict())
with torch.no_grad():
    model.cls_token.copy_(cls_token)
    assert torch.equal(model.embed(images), sequence)
print("PatchEmbedding and VisionTransformer.embed match the lesson's code:", tuple(model.embed(images).shape))

# %% [markdown]
# Mistakes are caught before any convolution runs:

# %% tags=["nbval-check-output"]
attempts = [
    ("PatchEmbedding(img_size=30, patch_size=4)", lambda: PatchEmbedding(img_size=30, patch_size=4)),
    ("channels-last images", lambda: patch_embed(images.permute(0, 2, 3, 1))),
    ("a 256-px image into a 224-px model", lambda: patch_embed(torch.zeros(1, 3, 256, 256))),
]
for what, attempt in attempts:
    try:
        attempt()
    except (ValueError, TypeError) as error:
        print(f"{what}:\n  {type(error).__name__}: {error}\n")

# %% [markdown]
# ## Summary
#
# - The patch embedding is one linear map E shared by all patches: (B, N, C·P·P) → (B, N, D).
# - `Conv2d(C, D, kernel_size=P, stride=P)` followed by `.flatten(2).transpose(1, 2)` is the same
#   map in one step, with E as its weight (D, C, P, P); that is how ViT implementations and
#   pretrained weights store it.
# - A learned class token (1, 1, D), expanded over the batch and put first, makes (B, N+1, D).
#
# ## Exercises
#
# `ex.hint()` prints a hint, `ex.solution()` a reference solution.
#
# **1. Patch embedding.** Write the class `MyPatchEmbedding(img_size, patch_size, in_chans,
# embed_dim)`: a `Conv2d` named `proj`, and `forward` mapping (B, C, H, W) → (B, N, D). `img_size`
# may be an int or a pair (height, width). The check copies random weights into your `proj` and
# compares with `vit_lessons` on several sizes, including non-square images and one channel.

# %%
# EXERCISE 02.patch_embedding: MyPatchEmbedding
class MyPatchEmbedding(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        raise NotImplementedError  # your code here

    def forward(self, images):
        raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("02.patch_embedding")
ex.check(MyPatchEmbedding)

# %% [markdown]
# **2. The class token.** Write `my_prepend_class_token(tokens, cls_token)`: tokens (B, N, D) and a
# class token (1, 1, D) → (B, N+1, D), the class token first. Gradients must reach `cls_token`.

# %%
# EXERCISE 02.class_token: my_prepend_class_token
def my_prepend_class_token(tokens, cls_token):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
ex_cls = get_exercise("02.class_token")
ex_cls.check(my_prepend_class_token)

# %% [markdown]
# **3. Try this (not graded).** Make the projection overlap: `nn.Conv2d(3, D, kernel_size=16,
# stride=8)` on a 224-px image. How many tokens do you get, and why is that no longer "patchify,
# then Linear"?
#
# **Next:** [lesson 03](03_position_embeddings.ipynb): the tokens do not know where their patch
# came from. Position embeddings tell them.
