# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 03: position embeddings
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/03_position_embeddings.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** the E_pos of ViT's Eq. 1, z₀ = [x_class; x¹E; …; xᴺE] + E_pos. You will see
# that without it a ViT cannot tell a digit from a shuffled copy of itself; build the fixed
# sinusoidal encodings of "Attention is all you need" in 1-D and 2-D; train a tiny ViT on 8×8
# digits with learned, sinusoidal and no position information and compare the accuracies and
# what the learned embeddings look like; and resample position embeddings to a new grid size.
#
# **Prerequisites:** lessons 01-02 (patches, patch embedding, class token).
#
# **Run time:** 18 s in full mode (most of it training three tiny ViTs) on an Intel Xeon CPU with 2 cores
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
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from vit_lessons import create_model
from vit_lessons.patches import patchify, unpatchify
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
plt.rcParams["figure.dpi"] = 80
print(run_banner(device))

# %% [markdown]
# ## The data: 8×8 digits
#
# scikit-learn's handwritten digits (1,797 images of 8×8 pixels, values 0-16) ship with the
# library, so nothing is downloaded. We fix one stratified split (75 % train, 25 % test), scale
# the pixels to [0, 1] and normalise with the training set's mean and standard deviation. With
# 2×2 patches each digit is a 4×4 grid: 16 tokens.

# %% tags=["nbval-check-output"]
pixels, labels = load_digits(return_X_y=True)
pixels = torch.tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16  # (B, 1, 8, 8) in [0, 1]
labels = torch.tensor(labels)
x_train, x_test, y_train, y_test = train_test_split(pixels, labels, test_size=0.25, random_state=0, stratify=labels)
mean, std = x_train.mean(), x_train.std()
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
print("train:", tuple(x_train.shape), "test:", tuple(x_test.shape))
print("tokens per image:", patchify(x_train[:1], 2).shape[1])

# %% [markdown]
# ## Without positions, order is lost
#
# Self-attention treats its input as a *set*: permute the tokens and its output is permuted the
# same way (it is permutation-equivariant), and the class token's output does not change at all.
# So a ViT without position information gives the **same** answer for a digit and for its 16
# patches shuffled. Below, the package's `VisionTransformer` (untrained; that does not matter
# here) with `pos_embed="none"` and with learned position embeddings.

# %% tags=["nbval-check-output"]
digits = x_test[:8]  # (B, 1, 8, 8)
order = torch.randperm(16)
shuffled = unpatchify(patchify(digits, 2)[:, order], 2)  # the same 16 patches, in another order
for pos_embed in ["none", "learn"]:
    model = create_model("vit_digits_patch2_8", pos_embed=pos_embed).eval()
    with torch.no_grad():
        same = torch.allclose(model(digits), model(shuffled), atol=1e-5)
    print(f'pos_embed="{pos_embed}": same logits for the shuffled digits: {same}')

# %%
fig, axes = plt.subplots(2, 6, figsize=(8, 3))
for column in range(6):
    for row, (batch, name) in enumerate([(digits, "digit"), (shuffled, "shuffled")]):
        axes[row, column].imshow(batch[column, 0].numpy(), cmap="gray_r")
        axes[row, column].set_xticks([])
        axes[row, column].set_yticks([])
    axes[0, column].set_title(f"label {y_test[column].item()}")
axes[0, 0].set_ylabel("original")
axes[1, 0].set_ylabel("patches\nshuffled")
fig.suptitle("to a ViT without position information these rows are identical")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Sinusoidal encodings in 1-D
#
# The original transformer adds a fixed vector to each position p (Vaswani et al. 2017, Sec. 3.5):
#
# PE[p, 2i] = sin(p / 10000^(2i/D)),   PE[p, 2i+1] = cos(p / 10000^(2i/D)).
#
# Each pair of columns is a sine and cosine of one frequency; the frequencies fall geometrically
# from 1 (a period of 2π positions) to about 1/10000. Step by step for 50 positions and D = 64:

# %% tags=["nbval-check-output"]
num_positions, dim = 50, 64
positions = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (N, 1)
two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (D/2,): 0, 2, 4, ...
frequencies = 1 / 10000 ** (two_i / dim)  # (D/2,)
angles = positions * frequencies  # (N, D/2)
encoding = torch.zeros(num_positions, dim, dtype=torch.float64)
encoding[:, 0::2] = torch.sin(angles)  # even columns
encoding[:, 1::2] = torch.cos(angles)  # odd columns
encoding = encoding.float()  # (N, D)
print("angles:  ", tuple(angles.shape))
print("encoding:", tuple(encoding.shape))

# %% [markdown]
# Left: the encoding as a heat map, one row per position. The first columns change fast, the last
# ones hardly at all, like the digits of a counter. Right: the dot product of every position's
# encoding with every other's. It depends only on the distance p − q (the matrix is constant along
# its diagonals), which is what lets attention read relative positions out of these vectors.

# %%
fig, (ax_pe, ax_dot) = plt.subplots(1, 2, figsize=(10, 3.8))
shown = ax_pe.imshow(encoding.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
ax_pe.set_xlabel("feature (column)")
ax_pe.set_ylabel("position p")
ax_pe.set_title("1-D sinusoidal encoding, D = 64")
fig.colorbar(shown, ax=ax_pe)
dots = encoding @ encoding.T  # (N, N)
shown = ax_dot.imshow(dots.numpy(), cmap="viridis")
ax_dot.set_xlabel("position q")
ax_dot.set_ylabel("position p")
ax_dot.set_title("PE(p) · PE(q)")
fig.colorbar(shown, ax=ax_dot)
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
from vit_lessons.position import sinusoidal_position_encoding

assert torch.allclose(sinusoidal_position_encoding(num_positions, dim), encoding, atol=1e-6)
offsets_only = all(torch.allclose(dots.diagonal(k), dots.diagonal(k)[0].expand(num_positions - k), atol=1e-4)
                   for k in range(num_positions))
print("matches vit_lessons.position.sinusoidal_position_encoding")
print("PE(p)·PE(q) depends only on p - q:", offsets_only)

# %% [markdown]
# ## Sinusoidal encodings in 2-D
#
# Patches sit on a grid, not a line. The 2-D version gives each patch the 1-D encoding of its
# **row** in the first D/2 features and that of its **column** in the last D/2, in the row-major
# order of `patchify`. (MAE and many later ViTs use an encoding like this; codebases differ in
# which half holds the row and in whether sin and cos are interleaved, so check before loading
# someone else's weights.) For the 4×4 digit grid and D = 64:

# %% tags=["nbval-check-output"]
grid, dim = 4, 64
row_code = sinusoidal_position_encoding(grid, dim // 2)  # (4, D/2)
col_code = sinusoidal_position_encoding(grid, dim // 2)  # (4, D/2)
rows = row_code[:, None, :].expand(grid, grid, dim // 2)  # (4, 4, D/2): the same along a row
cols = col_code[None, :, :].expand(grid, grid, dim // 2)  # (4, 4, D/2): the same down a column
encoding_2d = torch.cat([rows, cols], dim=-1).reshape(grid * grid, dim)  # (N, D), row-major
print("rows, cols:", tuple(rows.shape), tuple(cols.shape))
print("encoding_2d:", tuple(encoding_2d.shape))

# %% tags=["nbval-check-output"]
from vit_lessons.position import sinusoidal_position_encoding_2d

assert torch.equal(sinusoidal_position_encoding_2d(grid, grid, dim), encoding_2d)
print("matches vit_lessons.position.sinusoidal_position_encoding_2d")

# %% [markdown]
# How alike are two positions? For each patch, the cosine similarity of its encoding with every
# other patch's, drawn on the 4×4 grid: a 4×4 grid of 4×4 maps (map (r, c) belongs to the patch in
# row r, column c). All the similarities here are high, because most of the 64 features have
# periods far longer than 4 positions and barely change across the grid; the colour scale runs
# from the lowest value to 1 so that the structure shows: each patch is most like its own row and
# its own column. We will put the same picture for learned embeddings next to it once a model has
# learned some.

# %%
def similarity_maps(position_vectors: torch.Tensor, grid: int, title: str, fig) -> None:
    """Draw the cosine similarity of each of the grid·grid position vectors with all the others."""
    unit = F.normalize(position_vectors.detach().float(), dim=-1)  # (N, D)
    similarity = unit @ unit.T  # (N, N)
    low = similarity.min().item()  # one colour scale per figure, from its lowest similarity to 1
    axes = fig.subplots(grid, grid)
    for index, ax in enumerate(axes.flat):
        shown = ax.imshow(similarity[index].reshape(grid, grid).numpy(), cmap="viridis", vmin=low, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    for row in range(grid):
        axes[row, 0].set_ylabel(f"row {row}", fontsize=8)
        axes[-1, row].set_xlabel(f"col {row}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.colorbar(shown, ax=axes, shrink=0.8, label="cosine similarity")


fig = plt.figure(figsize=(5, 4))
similarity_maps(encoding_2d, grid, "2-D sinusoidal, 4×4 grid, D = 64", fig)
plt.show()

# %% [markdown]
# ## Learned embeddings
#
# ViT itself does not use a formula: E_pos is a parameter, one D-vector per position (class token
# included), initialised with small random numbers and learned with everything else. The paper
# found little difference between 1-D learned, 2-D learned and relative variants (Appendix D.4).

# %% tags=["nbval-check-output"]
from vit_lessons.position import learned_position_embedding

pos_embed = learned_position_embedding(1 + 16, 64)  # (1, 1 + N, D): class token + 16 patches
print("learned position embedding:", tuple(pos_embed.shape), "requires grad:", pos_embed.requires_grad)

# %% [markdown]
# ## An experiment: learned vs sinusoidal vs none
#
# `vit_lessons.create_model("vit_digits_patch2_8")` is a 4-layer ViT of width 64 on 16 tokens of
# 2×2 pixels. We train it three times from the same seed, changing only `pos_embed`, with a short
# AdamW loop (lesson 08 builds the full training loop). The table reports each run's wall-clock
# and CPU time.

# %%
def train_digits(pos_embed: str, steps: int, batch_size: int = 64, lr: float = 3e-3, seed: int = 0):
    """Train vit_digits_patch2_8 with the given position information; return it and its train time
    (wall clock and process CPU time: on a busy machine the first grows, the second much less)."""
    seed_everything(seed)
    model = create_model("vit_digits_patch2_8", pos_embed=pos_embed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(x_train), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(x_train[batch].to(device)), y_train[batch].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    seconds = (time.perf_counter() - start, time.process_time() - cpu_start)  # wall clock, CPU time
    return model.eval(), seconds


@torch.no_grad()
def accuracy(model, images, targets) -> float:
    return (model(images.to(device)).argmax(-1).cpu() == targets).float().mean().item()

# %%
steps = 30 if is_quick() else 300
models, results = {}, []
for pos_embed in ["learn", "sincos", "none"]:
    models[pos_embed], seconds = train_digits(pos_embed, steps)
    shuffled_test = unpatchify(patchify(x_test, 2)[:, order], 2)  # every test digit, patches shuffled
    results.append((pos_embed, accuracy(models[pos_embed], x_test, y_test),
                    accuracy(models[pos_embed], shuffled_test, y_test), seconds))
print(f"{steps} steps of batch 64 ({'quick' if is_quick() else 'full'} mode), {len(x_test)} test digits")
print(f"{'pos_embed':>10} {'test accuracy':>14} {'patches shuffled':>17} {'train time':>11} {'CPU time':>9}")
for pos_embed, acc, acc_shuffled, (wall, cpu) in results:
    print(f"{pos_embed:>10} {acc:>14.1%} {acc_shuffled:>17.1%} {wall:>10.1f}s {cpu:>8.1f}s")

# %% [markdown]
# In the full-mode run saved here (300 steps, the 2-core CPU named in the header), the models with
# position information reached about 90-92 % test accuracy and the one without about 72 % (read
# the exact figures in the table above; quick mode trains only 30 steps, so its numbers are
# lower). Without positions a "6" and a "9" made of the same strokes in other places look alike:
# the model only knows which 2×2 pieces are present. Shuffling the test digits' patches costs
# the position-aware models most of their accuracy and leaves the no-position model exactly where
# it was: it cannot see the order, for better or worse.
#
# ## What did the learned embeddings learn?
#
# The same maps as above, now for the trained model's E_pos (the 16 patch positions, class token
# left out), next to the fixed 2-D sinusoidal ones. Nothing told the model that the tokens form a
# 4×4 grid: whatever structure appears on the left it learned from the digits.

# %%
fig = plt.figure(figsize=(10, 4.2))
left, right = fig.subfigures(1, 2)
similarity_maps(models["learn"].pos_embed[0, 1:], grid, f"learned E_pos after {steps} steps", left)
similarity_maps(encoding_2d, grid, "2-D sinusoidal (fixed)", right)
plt.show()

# %% [markdown]
# Numbers to go with the picture: the mean cosine similarity between grid neighbours (patches that
# share an edge) and between patches farther apart, for the trained embeddings, for fresh ones,
# and for the sinusoidal ones.

# %%
def neighbour_contrast(position_vectors: torch.Tensor, grid: int) -> tuple[float, float]:
    unit = F.normalize(position_vectors.detach().float(), dim=-1)
    similarity = unit @ unit.T  # (N, N)
    coords = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"), -1).reshape(-1, 2)
    distance = (coords[:, None] - coords[None]).abs().sum(-1)  # Manhattan distance on the grid, (N, N)
    return similarity[distance == 1].mean().item(), similarity[distance >= 2].mean().item()


for name, vectors in [("learned (trained)", models["learn"].pos_embed[0, 1:]),
                      ("learned (at init)", learned_position_embedding(16, 64)[0]),
                      ("2-D sinusoidal", encoding_2d)]:
    near, far = neighbour_contrast(vectors, grid)
    print(f"{name:>18}: neighbours {near:+.2f}   farther apart {far:+.2f}")

# %% [markdown]
# In the full-mode run saved here the learned embeddings do **not** look like a grid: each
# position is distinct from all others, and grid neighbours came out slightly *less* alike than
# patches farther apart. The model learned to tell the 16 positions apart, which is all its
# classifier needed after 300 steps on 1,347 digits. A grid takes more data and more training to
# emerge, as the next section shows; the sinusoidal encoding has its structure from the start.

# %% [markdown]
# ## Learned positions after real training
#
# The course checkpoint `cifar10_vit` learned its position embeddings the same way, with nothing
# telling it about the grid either, but from 50,000 CIFAR-10 images over a whole training run
# (lesson 07's plain ViT at width D = 192; 32×32 images in 4×4-pixel patches, an 8×8 grid;
# trained in lesson 08). Its E_pos next to the 2-D sinusoidal encoding of the same grid and width:

# %%
from vit_lessons.train import load_course_checkpoint

cifar_vit, cifar_info = load_course_checkpoint("cifar10_vit", return_info=True)
cifar_pos = cifar_vit.pos_embed[0, 1:]  # (64, D): the 8×8 grid, class token left out
cifar_grid, cifar_dim = cifar_vit.patch_embed.grid_size[0], cifar_pos.shape[-1]
cifar_sincos = sinusoidal_position_encoding_2d(cifar_grid, cifar_grid, cifar_dim)  # (64, D)
fig = plt.figure(figsize=(11, 5))
left, right = fig.subfigures(1, 2)
similarity_maps(cifar_pos, cifar_grid, f"learned E_pos of cifar10_vit ({cifar_info['test_accuracy']:.1%} test accuracy)", left)
similarity_maps(cifar_sincos, cifar_grid, f"2-D sinusoidal, 8×8, D = {cifar_dim}", right)
plt.show()

# %% tags=["nbval-check-output"]
for name, vectors, grid_side in [("cifar10_vit (trained)", cifar_pos, cifar_grid),
                                 ("learned (at init)", learned_position_embedding(64, cifar_dim)[0], cifar_grid),
                                 ("2-D sinusoidal", cifar_sincos, cifar_grid)]:
    near, far = neighbour_contrast(vectors, grid_side)
    print(f"{name:>21}: neighbours {near:+.2f}   farther apart {far:+.2f}")

# %% [markdown]
# Here the grid did emerge. Each map on the left is bright at its own patch and its surroundings
# and dark far away: grid neighbours are much more alike than patches farther apart (the printout),
# and the rows and columns show through, much like the sinusoidal picture on the right, although
# the model was never told that its 64 tokens form an 8×8 grid. It learned that from 50,000 images,
# where the 16-token digits model after 300 steps had not; the ViT paper's Figure 7 shows the same
# structure in models pre-trained on millions of images.

# %% [markdown]
# ## Resampling to a new grid size
#
# A ViT trained at 224 px with P = 16 has a 14×14 grid of position embeddings. Fine-tuned at 384 px
# it has a 24×24 grid, and ViT interpolates the embeddings as a 2-D image (Sec. 3.2 of the
# paper). `vit_lessons.position.resample_position_embedding` does this the way timm does: the class
# token's embedding is kept, the 196 grid vectors are reshaped to a D-channel 14×14 image,
# resized bicubically (with antialiasing) to 24×24 and flattened again. We show it on a 2-D
# sinusoidal embedding of ViT-Ti's width D = 192, since it has a visible pattern.

# %% tags=["nbval-check-output"]
from vit_lessons.position import resample_position_embedding

dim = 192
grid_14 = sinusoidal_position_encoding_2d(14, 14, dim)  # (196, D)
pos_14 = torch.cat([torch.zeros(1, dim), grid_14]).unsqueeze(0)  # (1, 1 + 196, D): class token first
pos_24 = resample_position_embedding(pos_14, new_grid=(24, 24), num_prefix_tokens=1)  # (1, 1 + 576, D)
print("before:", tuple(pos_14.shape), "after:", tuple(pos_24.shape))
print("class token kept:", torch.equal(pos_24[0, 0], pos_14[0, 0]))

# %%
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax_pair, feature in zip([axes[:2], axes[2:]], [4, dim // 2 + 4]):
    for ax, (pos, side) in zip(ax_pair, [(pos_14, 14), (pos_24, 24)]):
        shown = ax.imshow(pos[0, 1:, feature].reshape(side, side).numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"feature {feature}, {side}×{side}", fontsize=9)
        ax.set_xlabel("grid column")
axes[0].set_ylabel("grid row")
fig.colorbar(shown, ax=axes, shrink=0.8)
fig.suptitle("one feature of the position embedding before and after resampling 14×14 → 24×24", fontsize=10)
plt.show()

# %% [markdown]
# The pattern is stretched to the new grid: each feature keeps its shape across the image, so
# patch (r, c) at 384 px gets roughly the embedding of patch (r·14/24, c·14/24) at 224 px. For
# learned embeddings this is all one can do; for sinusoidal ones there is another option,
# recomputing the formula for the new grid (which keeps the frequencies per *patch* rather than per
# *image*). `VisionTransformer.set_img_size` does the first for `pos_embed="learn"` and the second
# for `"sincos"`.
#
# ## Summary
#
# - Attention is blind to order: without position information a ViT gives the same output for any
#   shuffle of the patches (checked above, to 1e-5).
# - Sinusoidal encodings are fixed sin/cos pairs of geometric frequencies; their dot products
#   depend only on the distance. The 2-D version encodes row and column in two halves.
# - ViT learns its E_pos instead. On the digits, learned and 2-D sinusoidal positions trained to
#   similar accuracy and both clearly beat no positions (table above, with this run's numbers).
# - Learned embeddings find the 2-D grid when there is enough data and training: the course's
#   CIFAR-10 ViT did, the 300-step digits model did not.
# - To change the resolution, resample the learned grid as an image; the class token keeps its
#   embedding.
#
# ## Exercises
#
# `ex.hint()` prints a hint, `ex.solution()` a reference solution.
#
# **1. 1-D sinusoidal encoding.** Write `my_sinusoidal(num_positions, dim)` returning the
# (num_positions, dim) tensor PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same angle),
# for any even `dim`. Any floating-point dtype is fine.

# %%
# EXERCISE 03.sinusoidal: my_sinusoidal
def my_sinusoidal(num_positions, dim):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("03.sinusoidal")
ex.check(my_sinusoidal)

# %% [markdown]
# **2. 2-D sinusoidal encoding.** Write `my_sinusoidal_2d(grid_height, grid_width, dim)`:
# (grid_height·grid_width, dim), patches row-major, each the 1-D encoding (width dim/2) of its row
# followed by that of its column. Grids need not be square.

# %%
# EXERCISE 03.sinusoidal_2d: my_sinusoidal_2d
def my_sinusoidal_2d(grid_height, grid_width, dim):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
ex_2d = get_exercise("03.sinusoidal_2d")
ex_2d.check(my_sinusoidal_2d)

# %% [markdown]
# **3. Try this (not graded).** Train `train_digits("learn", 1000)` and redraw the learned
# similarity maps: does the grid structure get clearer with longer training? And what happens to
# the "patches shuffled" accuracy of the `"none"` model if you shuffle with a different `order`?
#
# **Next:** [lesson 04](04_self_attention.ipynb) builds the operation that mixes the tokens:
# scaled dot-product self-attention.
