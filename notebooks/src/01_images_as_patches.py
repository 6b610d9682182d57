# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 01: images as sequences of patches
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/01_images_as_patches.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** `patchify`, the first step of a Vision Transformer. A transformer reads a
# sequence of vectors; a ViT makes one out of an image by cutting it into P×P patches and
# flattening each patch into a vector (Dosovitskiy et al. 2021, Sec. 3.1). You will write it three
# ways (reshape and permute, `unfold`, a strided convolution), show that all three agree, and see
# how the patch size trades sequence length for detail.
#
# **Prerequisites:** lesson 00; PyTorch tensors, `reshape` and `permute`.
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
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
plt.rcParams["figure.dpi"] = 80
print(run_banner(device))

# %% [markdown]
# ## An image is a grid of patches
#
# We use the astronaut photograph that ships with scikit-image (no download). ViT-B/16 reads
# 224×224 RGB images, so we resize it to 224 pixels and store it the way PyTorch models expect:
# a float tensor of shape (B, C, H, W) with values in [0, 1].

# %% tags=["nbval-check-output"]
def to_tensor(image_hwc: np.ndarray, size) -> torch.Tensor:
    """uint8 (H, W, C) array → float (1, C, size, size) tensor in [0, 1]."""
    image = torch.from_numpy(image_hwc).permute(2, 0, 1).float() / 255  # (C, H, W)
    image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)
    return image.clamp(0, 1)  # (1, C, size, size)


images = to_tensor(data.astronaut(), 224)  # (B, C, H, W)
B, C, H, W = images.shape
P = 16  # patch size
print("images:", tuple(images.shape))
print(f"patch grid: {H // P} x {W // P} = {(H // P) * (W // P)} patches of {C}x{P}x{P} = {C * P * P} numbers")

# %% [markdown]
# With P = 16 the image is a 14 × 14 grid of patches. The grid lines below show them; the
# numbers are each patch's index in the sequence the transformer will read: row by row
# (row-major), left to right, top to bottom.

# %%
def show_image(ax, image, title=""):
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_title(title)


fig, ax = plt.subplots(figsize=(5, 5))
show_image(ax, images[0], f"224×224 image, {P}×{P} patches")
for line in range(0, H + 1, P):
    ax.axhline(line - 0.5, color="white", linewidth=0.6)
    ax.axvline(line - 0.5, color="white", linewidth=0.6)
for index in range(0, (H // P) * (W // P), 15):
    row, col = divmod(index, W // P)
    ax.text(col * P + P / 2, row * P + P / 2, str(index), color="yellow", ha="center", va="center", fontsize=7)
ax.set_xlabel("x (pixels)")
ax.set_ylabel("y (pixels)")
plt.show()

# %% [markdown]
# ## Patchify by reshape and permute
#
# Cutting into patches is only a re-indexing of the pixels; no arithmetic. Write the pixel row
# `y` as `y = grid_row · P + row_in_patch` and the column `x` as `x = grid_col · P + col_in_patch`:
# a `reshape` splits each spatial axis into those two factors.

# %% tags=["nbval-check-output"]
grid_h, grid_w = H // P, W // P
split = images.reshape(B, C, grid_h, P, grid_w, P)  # (B, C, grid_row, row_in_patch, grid_col, col_in_patch)
print("split:   ", tuple(split.shape))

# %% [markdown]
# Now reorder the axes so that the two grid axes come first (they index the patch) and the
# three axes inside a patch come last, in the order **(channel, row in patch, column in patch)**.
# That order is not arbitrary: it is the order of a `Conv2d` weight `(out, C, P, P)`, which
# we will use below. Then merge the grid axes into one sequence axis N and the patch axes into
# one vector of length C·P·P.

# %% tags=["nbval-check-output"]
moved = split.permute(0, 2, 4, 1, 3, 5)  # (B, grid_row, grid_col, C, row_in_patch, col_in_patch)
patches = moved.reshape(B, grid_h * grid_w, C * P * P)  # (B, N, C·P·P)
print("permuted:", tuple(moved.shape))
print("patches: ", tuple(patches.shape))

# %% [markdown]
# A check that the re-indexing does what the picture says: patch number `n` is the pixels in
# rows `r·P … r·P+P-1` and columns `c·P … c·P+P-1` with `(r, c) = divmod(n, 14)`.

# %% tags=["nbval-check-output"]
for n in [0, 15, 195]:
    r, c = divmod(n, grid_w)
    crop = images[0, :, r * P : (r + 1) * P, c * P : (c + 1) * P]  # (C, P, P)
    print(f"patch {n:3d} = grid cell ({r:2d}, {c:2d}):", torch.equal(patches[0, n], crop.flatten()))

# %% [markdown]
# ## The token sequence
#
# This is what the transformer sees: a sequence of 196 vectors, each 768 numbers long. First, 20
# consecutive tokens laid out as a sequence: tokens 84 to 97 are grid row 6 (through the suit),
# and token 98 starts row 7 at the left edge again. The sequence keeps no trace of that jump: the
# model must learn where each token came from (lesson 03).

# %%
first, count = 84, 20
strip = patches[0, first : first + count].reshape(count, C, P, P).permute(0, 2, 3, 1)  # (count, P, P, C)
gap = torch.ones(count, P, 3, C)  # white space between tokens
sequence = torch.cat([strip, gap], dim=2).permute(1, 0, 2, 3).reshape(P, count * (P + 3), C)
fig, ax = plt.subplots(figsize=(10, 1.6))
ax.imshow(sequence[:, :-3].numpy())
ax.set_xticks([(P + 3) * i + P / 2 for i in range(count)], [str(first + i) for i in range(count)], fontsize=8)
ax.set_yticks([])
ax.set_xlabel("position in the sequence (token index)")
ax.set_title(f"tokens {first}-{first + count - 1}: grid row 6, then the start of row 7")
plt.show()

# %% [markdown]
# And the whole (N, C·P·P) matrix, one row per patch. In each row the first 256 numbers are the
# red channel of the patch, row by row, then green, then blue.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
shown = ax.imshow(patches[0].numpy(), aspect="auto", cmap="gray", interpolation="nearest")
ax.set_xlabel("feature: (channel, row, column) in the patch")
ax.set_ylabel("token (patch index)")
ax.set_title("patches: (N, C·P·P) = (196, 768)")
fig.colorbar(shown, ax=ax, label="pixel value")
plt.show()

# %% [markdown]
# ## Patchify with `unfold`
#
# `torch.nn.functional.unfold` extracts sliding blocks; with `kernel_size = stride = P` the blocks
# are exactly our patches. It returns them as columns, (B, C·P·P, N), already in (channel, row,
# column) order, so one transpose gives the same tensor.

# %% tags=["nbval-check-output"]
columns = F.unfold(images, kernel_size=P, stride=P)  # (B, C·P·P, N)
patches_unfold = columns.transpose(1, 2)  # (B, N, C·P·P)
print("unfold:    ", tuple(columns.shape))
print("transposed:", tuple(patches_unfold.shape))
print("equal to reshape/permute:", torch.equal(patches_unfold, patches))

# %% [markdown]
# There is a trap here, which a widely read ViT tutorial falls into. `Tensor.unfold` on the two
# spatial axes gives (B, C, grid_h, grid_w, P, P); moving the channel axis to the *end* with
# `permute(0, 2, 3, 4, 1)` yields the right shape but orders each vector (row, column, channel).
# The shape is right and nothing crashes, but each vector is shuffled: a `Linear` layer can still
# learn from it, yet it no longer matches the Conv2d layout, so pretrained ViT weights would
# read every patch wrongly.

# %% tags=["nbval-check-output"]
blocks = images.unfold(2, P, P).unfold(3, P, P)  # (B, C, grid_h, grid_w, P, P)
channels_last = blocks.reshape(B, C, -1, P, P).permute(0, 2, 3, 4, 1).reshape(B, -1, C * P * P)
channels_first = blocks.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * P * P)
print("Tensor.unfold:", tuple(blocks.shape))
print("permute(0, 2, 3, 4, 1), channels last: same shape", channels_last.shape == patches.shape,
      "| equal", torch.equal(channels_last, patches))
print("permute(0, 2, 3, 1, 4, 5), channels first: equal", torch.equal(channels_first, patches))

# %% [markdown]
# ## Patchify with a strided convolution
#
# A `Conv2d` with `kernel_size = stride = P` looks at each patch once, without overlap. Give it
# C·P·P output channels and make output channel k pick out the k-th number of the patch
# (an identity matrix reshaped to the weight's shape (C·P·P, C, P, P)): its output is the patch
# vector at every grid cell. This is why a ViT implements its patch projection as a convolution
# (lesson 02), and why the vector order must be (channel, row, column).

# %% tags=["nbval-check-output"]
identity = torch.eye(C * P * P).reshape(C * P * P, C, P, P)  # weight (out, in, kh, kw)
feature_map = F.conv2d(images, identity, stride=P)  # (B, C·P·P, grid_h, grid_w)
patches_conv = feature_map.flatten(2).transpose(1, 2)  # (B, N, C·P·P)
print("conv output:", tuple(feature_map.shape))
print("tokens:     ", tuple(patches_conv.shape))
print("equal to reshape/permute:", torch.allclose(patches_conv, patches, atol=1e-6))

# %% [markdown]
# The convolution's output is a sum of products, so we compare with a tolerance of 1e-6 rather than
# bit for bit. All three ways give the same tensor:
#
# | method | intermediate shape | extra step |
# |---|---|---|
# | reshape + permute | (B, C, gh, P, gw, P) | permute(0, 2, 4, 1, 3, 5), reshape |
# | `F.unfold` | (B, C·P·P, N) | transpose(1, 2) |
# | stride-P `conv2d` | (B, C·P·P, gh, gw) | flatten(2), transpose(1, 2) |

# %% [markdown]
# ## Patch size: sequence length against detail
#
# Self-attention compares every token with every other one, so its cost grows with N². For a
# 224-pixel image, halving the patch size multiplies N by 4 and the attention cost by 16. The
# table is pure arithmetic (P = 14 is ViT-H/14's patch size; 16 and 32 are ViT-B's).

# %% tags=["nbval-check-output"]
print(f"{'P':>3} {'grid':>8} {'N tokens':>9} {'C·P·P':>6} {'N² (attention pairs)':>21}")
for patch in [8, 14, 16, 32]:
    side = 224 // patch
    n = side * side
    print(f"{patch:>3} {f'{side}x{side}':>8} {n:>9,} {3 * patch * patch:>6,} {n * n:>21,}")

# %% [markdown]
# What each token summarises: below, every patch is replaced by its mean colour, for four patch
# sizes. With P = 32 a token covers a whole eye and more; with P = 8 it covers part of one. The
# transformer sees every pixel of the patch, not only its mean, but the sequence gets shorter
# and each token carries coarser spatial information.

# %%
cat = to_tensor(data.chelsea()[:, 75:375], 224)  # a square crop of the cat, (1, C, 224, 224)
fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
for ax, patch in zip(axes, [8, 14, 16, 32]):
    means = F.avg_pool2d(cat, patch)  # (1, C, 224/P, 224/P): one colour per patch
    blocky = F.interpolate(means, scale_factor=patch, mode="nearest")[0]  # (C, 224, 224)
    side = 224 // patch
    show_image(ax, blocky, f"P = {patch}: {side}×{side} = {side * side} tokens")
    ax.set_xlabel("x (pixels)")
axes[0].set_ylabel("y (pixels)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Non-square images
#
# Nothing above needs a square image. The coffee photograph is 400 × 600; cropped to 384 × 576
# (multiples of 16), it is a 24 × 36 grid: 864 tokens.

# %% tags=["nbval-check-output"]
coffee = torch.from_numpy(data.coffee()[8:392, 12:588]).permute(2, 0, 1).float()[None] / 255  # (1, C, 384, 576)
coffee_patches = F.unfold(coffee, kernel_size=P, stride=P).transpose(1, 2)  # (1, N, C·P·P)
print("coffee:", tuple(coffee.shape), "->", tuple(coffee_patches.shape))

# %% [markdown]
# ## The `vit_lessons` version
#
# The package's `patchify` is the reshape/permute version above, with input checks; `unpatchify`
# undoes it. Both must agree with what we built.

# %% tags=["nbval-check-output"]
from vit_lessons.patches import patchify, unpatchify

assert torch.equal(patchify(images, P), patches)
assert torch.equal(patchify(coffee, P), coffee_patches)
assert torch.equal(unpatchify(patches, P), images)
assert torch.equal(unpatchify(coffee_patches, P, grid_size=(24, 36)), coffee)
print("patchify and unpatchify match the lesson's code")

# %% [markdown]
# Wrong input fails early with a message that says what to do:

# %% tags=["nbval-check-output"]
for bad in [images[:, :, :220], images[0], images.permute(0, 2, 3, 1).mul(255).byte()]:  # 220 rows, no batch, uint8
    try:
        patchify(bad, P)
    except (ValueError, TypeError) as error:
        print(f"{type(error).__name__}: {error}\n")

# %% [markdown]
# ## Summary
#
# - A ViT turns an image (B, C, H, W) into a sequence (B, N, C·P·P) of N = (H/P)(W/P) flattened
#   patches, taken row by row.
# - reshape + permute, `F.unfold` and a stride-P convolution give the same tensor when each patch
#   vector is ordered (channel, row, column), the order of a `Conv2d` weight. Channels-last
#   ordering has the right shape and the wrong content.
# - The patch size sets the sequence length: at 224 px, P = 16 gives 196 tokens and P = 8 gives
#   784, with 16× the attention pairs.
#
# ## Exercises
#
# Fill in each stub and run the check below it. `ex.hint()` prints a hint, `ex.solution()` a
# reference solution.
#
# **1. `patchify`.** Write `my_patchify(images, patch_size)`: (B, C, H, W) → (B, N, C·P·P), patches
# row-major, each vector (channel, row, column). It must work for any batch size, any number of
# channels, and non-square images, and must not change its input.

# %%
# EXERCISE 01.patchify: my_patchify
def my_patchify(images, patch_size):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("01.patchify")
ex.check(my_patchify)

# %% [markdown]
# **2. `unpatchify`.** Write `my_unpatchify(patches, patch_size, grid_size)`, the inverse:
# (B, N, C·P·P) → (B, C, H, W) for a grid of `grid_size = (rows, columns)` patches. Later lessons use
# it to show attention maps and reconstructions on the image.

# %%
# EXERCISE 01.unpatchify: my_unpatchify
def my_unpatchify(patches, patch_size, grid_size):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
ex_unpatchify = get_exercise("01.unpatchify")
ex_unpatchify.check(my_unpatchify)

# %% [markdown]
# **3. Try this (not graded).** ViT-B/16 fine-tuned at 384 px: how many tokens does it read, and
# how many times more attention pairs than at 224 px? Compute it, then check with
# `patchify(torch.zeros(1, 3, 384, 384), 16).shape`.
#
# **4. Try this (not graded).** Start from `images.unfold(2, P, P).unfold(3, P, P)` and find the
# `permute` that makes the result equal `patchify(images, P)` (one is printed above; is there another?).
#
# **Next:** [lesson 02](02_patch_embedding.ipynb) projects each patch vector to the model width with
# a learned linear map, written as that strided convolution, and adds the class token.
