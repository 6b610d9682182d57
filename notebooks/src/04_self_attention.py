# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 04: scaled dot-product self-attention
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/04_self_attention.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** the one operation a Transformer is made of,
#
# $$\text{Attention}(Q, K, V) = \text{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}}\right) V
# \qquad \text{(Vaswani et al. 2017, Eq. 1)},$$
#
# written out step by step on the patches of a real photograph, then checked against PyTorch's
# `F.scaled_dot_product_attention`. You will see *why* the scores are divided by $\sqrt{d}$ (a
# plot of softmax saturation), how boolean masks work, what an attention matrix looks like as a
# picture, and measure the price of attention: time and memory that grow with the square of the
# number of tokens.
#
# **Prerequisites:** lesson 01 (images as patches); PyTorch tensors and `@` (matrix product).
#
# **Run time:** 4 s in full mode (most of it the timing section) on an Intel Xeon CPU with 2 cores
# (Intel(R) Xeon(R) Processor), idle, the machine that saved these outputs; quick mode
# (`VIT_LESSONS_QUICK=1`) takes a few seconds. GPU: not measured yet (nothing here needs one).

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from vit_lessons.patches import patchify
from vit_lessons.settings import hardware_name, is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
print(run_banner(device))

# %% [markdown]
# ## 1. Tokens: the patches of a photograph
#
# Attention works on a *set of tokens*, each a vector. We take the astronaut photograph from
# scikit-image, shrink it to 64×64 pixels and cut it into 8×8 patches (lesson 01): 64 tokens, each
# the 8·8·3 = 192 pixel values of one patch.

# %% tags=["nbval-check-output"]
photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255  # (C, H, W) = (3, 512, 512)
image = F.interpolate(photo[None], size=(64, 64), mode="area")  # (B, C, H, W) = (1, 3, 64, 64)
tokens = patchify(image, 8)  # (B, N, C·P·P)
print("photo :", tuple(photo.shape))
print("image :", tuple(image.shape))
print("tokens:", tuple(tokens.shape), "= (batch, 64 patches, 192 pixel values each)")

# %% [markdown]
# ## 2. Queries, keys and values
#
# Each token plays three roles, through three learned linear maps of the token vector:
#
# - a **query** $q_i = x_i W_Q$: what token *i* is looking for;
# - a **key** $k_j = x_j W_K$: what token *j* offers to be found by;
# - a **value** $v_j = x_j W_V$: what token *j* hands over when it is found.
#
# Queries and keys must have the same size $d$ (we take their dot product); values may have
# another size $d_v$. Here the maps are random (untrained): we only follow the shapes.

# %% tags=["nbval-check-output"]
D, d, d_v = tokens.shape[-1], 32, 24
to_query, to_key, to_value = nn.Linear(D, d), nn.Linear(D, d), nn.Linear(D, d_v)
with torch.no_grad():
    q, k, v = to_query(tokens), to_key(tokens), to_value(tokens)
print("q:", tuple(q.shape), " (B, N, d)")
print("k:", tuple(k.shape), " (B, N, d)")
print("v:", tuple(v.shape), " (B, N, d_v)")

# %% [markdown]
# ## 3. Scores, softmax, weighted sum
#
# Every query meets every key: the **scores** $q_i \cdot k_j$ form an N×N matrix, `q @ kᵀ`.
# Divided by $\sqrt{d}$ and passed through a softmax over the keys, each row becomes a set of
# **attention weights**: non-negative, summing to 1. The output for token *i* is the weighted
# average of the values, $\sum_j w_{ij} v_j$, which is `weights @ v`.

# %% tags=["nbval-check-output"]
scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, N, N): row i = query i against every key
weights = scores.softmax(dim=-1)  # (B, N, N): each row sums to 1
out = weights @ v  # (B, N, d_v)
print("scores :", tuple(scores.shape))
print("weights:", tuple(weights.shape), "| rows sum to 1:", torch.allclose(weights.sum(-1), torch.ones(1, 64)))
print("out    :", tuple(out.shape))

# %% [markdown]
# The same steps as one function. `transpose(-2, -1)` (not `.T`, not fixed dimension numbers)
# keeps it working for any leading batch and head dimensions, which lesson 05 needs. The `mask`
# argument is explained in section 5.


# %%
def attention(q, k, v, mask=None):
    """softmax(q kᵀ / sqrt(d)) v. q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, d_v).
    mask: boolean, True = may attend, broadcastable to (..., Nq, Nk). Returns (out, weights)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight at all
    weights = scores.softmax(dim=-1)  # (..., Nq, Nk)
    return weights @ v, weights  # (..., Nq, d_v), (..., Nq, Nk)


# %% [markdown]
# PyTorch ships the same operation as `F.scaled_dot_product_attention` (it picks a fast kernel
# and does not return the weights). Same inputs, same output:

# %% tags=["nbval-check-output"]
ours, _ = attention(q, k, v)
theirs = F.scaled_dot_product_attention(q, k, v)
print("shape:", tuple(ours.shape), "| equal to F.scaled_dot_product_attention:", torch.allclose(ours, theirs, atol=1e-6))

# %% [markdown]
# ## 4. Why divide by $\sqrt{d}$?
#
# If the entries of $q$ and $k$ have mean 0 and variance 1, their dot product is a sum of $d$
# such products: its variance is $d$. Large scores push the softmax towards a one-hot vector, and
# a saturated softmax passes almost no gradient back (its Jacobian, $\text{diag}(w) - w w^\top$,
# goes to zero). Dividing by $\sqrt{d}$ brings the variance back to 1 for every $d$.
#
# We measure it: one query against 64 keys, entries drawn from N(0, 1), 200 trials per size $d$.

# %%
def softmax_statistics(d, scale, trials=200, keys=64, seed=0):
    """Mean largest weight and mean Jacobian norm of softmax(q·k / scale) over random draws."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(trials, 1, d, generator=generator)
    k = torch.randn(trials, keys, d, generator=generator)
    weights = ((q @ k.transpose(-2, -1)) / scale).softmax(-1).squeeze(1)  # (trials, keys)
    jacobian = torch.diag_embed(weights) - weights[:, :, None] * weights[:, None, :]  # (trials, keys, keys)
    return weights.max(-1).values.mean().item(), jacobian.flatten(1).norm(dim=-1).mean().item()


dims = [4, 16, 64, 256, 1024]
raw = [softmax_statistics(d, 1.0) for d in dims]
scaled = [softmax_statistics(d, math.sqrt(d)) for d in dims]
print(f"{'d':>5} | {'max weight, q·k':>16} {'scaled':>7} | {'softmax Jacobian norm, q·k':>27} {'scaled':>7}")
for d_, (m_raw, j_raw), (m_sc, j_sc) in zip(dims, raw, scaled):
    print(f"{d_:>5} | {m_raw:>16.3f} {m_sc:>7.3f} | {j_raw:>27.4f} {j_sc:>7.4f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3), dpi=80)
left.semilogx(dims, [m for m, _ in raw], "o-", label="q·k (no scaling)")
left.semilogx(dims, [m for m, _ in scaled], "s-", label="q·k / sqrt(d)")
left.axhline(1 / 64, color="gray", ls=":", label="uniform (1/64)")
left.set(xlabel="d (query/key size)", ylabel="mean largest weight", title="Softmax saturation (64 keys)")
left.legend(fontsize=8)
right.semilogx(dims, [j for _, j in raw], "o-", label="q·k (no scaling)")
right.semilogx(dims, [j for _, j in scaled], "s-", label="q·k / sqrt(d)")
right.set(xlabel="d (query/key size)", ylabel="‖diag(w) − w wᵀ‖", title="Gradient through the softmax")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Without scaling, the largest weight climbs towards 1 as $d$ grows (the softmax becomes an
# arg-max). The Jacobian norm, the factor by which gradients pass through the softmax, is not
# hurt yet at d = 4 or 16, but from d = 64 on it falls towards 0 (in the table, about 2.5 times
# below the scaled value at d = 1024, and falling): learning slows. With $1/\sqrt{d}$ both curves stay flat: the
# softmax behaves the same whatever the width. (Trained queries and keys are not independent
# N(0, 1) draws; the point is how the spread of the scores grows with d.)
#
# ## 5. Masks: who may attend to whom
#
# A boolean mask of shape (Nq, Nk), or anything that broadcasts to the scores, says which keys
# each query may attend to: **True = may attend**, the convention of `F.scaled_dot_product_attention`.
# Masked scores become $-\infty$ *before* the softmax, so their weight is exactly 0 and the other
# weights still sum to 1. Two masks you will meet:
#
# - **causal** (language models): token *i* sees tokens 0…*i* only;
# - **key padding**: when sequences of different lengths share a batch (images of different
#   sizes, say), the padding tokens at the end must never be attended to. The mask has shape
#   (B, 1, 1, N): one row per sample, broadcast over heads and queries.

# %% tags=["nbval-check-output"]
causal = torch.ones(5, 5, dtype=torch.bool).tril()  # (Nq, Nk)
lengths = torch.tensor([5, 3])  # sample 0 has 5 real tokens, sample 1 only 3
padding = (torch.arange(5) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Nk)
print("causal mask (1 = may attend):\n", causal.int())
print("padding mask of sample 1:", padding[1, 0, 0].int().tolist(), "| shape", tuple(padding.shape))

# %%
q5, k5, v5 = torch.randn(3, 2, 1, 5, 8).unbind(0)  # (B, h, N, d) with B=2, h=1, N=5
_, causal_weights = attention(q5, k5, v5, causal)
_, padded_weights = attention(q5, k5, v5, padding)
print("causal weights, sample 0 (upper triangle is 0):\n", causal_weights[0, 0].numpy().round(2))
print("padded weights, sample 1 (keys 3 and 4 get 0):\n", padded_weights[1, 0].numpy().round(2))

# %% tags=["nbval-check-output"]
print("masked weights exactly 0:", bool((causal_weights[..., ~causal] == 0).all()), bool((padded_weights[1, ..., 3:] == 0).all()))
print("rows still sum to 1     :", torch.allclose(causal_weights.sum(-1), torch.ones(2, 1, 5)))
sdpa_causal = F.scaled_dot_product_attention(q5, k5, v5, attn_mask=causal)
sdpa_padded = F.scaled_dot_product_attention(q5, k5, v5, attn_mask=padding)
print("same as torch's SDPA    :", torch.allclose(attention(q5, k5, v5, causal)[0], sdpa_causal, atol=1e-6),
      torch.allclose(attention(q5, k5, v5, padding)[0], sdpa_padded, atol=1e-6))

# %% [markdown]
# Two traps. A **float** mask means something else to torch: it is *added* to the scores, so a 0/1
# float mask masks nothing (convert with `mask.bool()`; `vit_lessons` refuses a non-boolean mask).
# And a query that may attend to **no** key: its row is all $-\infty$, and the softmax of that is
# 0/0. The written-out version gives NaN; recent PyTorch versions of SDPA return zeros there
# instead. Both mean "nothing to attend to": avoid such rows.

# %%
nothing = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])  # row 1: no key
q3 = torch.randn(1, 3, 4)
print("written out:", attention(q3, q3, q3, nothing)[0][0, 1].tolist())
print("torch SDPA :", F.scaled_dot_product_attention(q3, q3, q3, attn_mask=nothing)[0, 1].tolist(), f"(torch {torch.__version__})")

# %% [markdown]
# ## 6. The attention matrix as a picture
#
# What does attention compute before any training? Describe each patch by its mean colour
# (3 numbers, standardised over the patches) and use that directly as query and key ($W_Q = W_K = I$).
# The 64×64 weight matrix, and three of its rows folded back onto the 8×8 patch grid:

# %%
colour = tokens.reshape(1, 64, 3, 64).mean(-1)  # (B, N, 3): patchify orders features channel-first
colour = (colour - colour.mean(1, keepdim=True)) / colour.std(1, keepdim=True)  # standardised per channel
_, colour_weights = attention(colour, colour, colour)  # (B, N, N)
fig, axes = plt.subplots(1, 4, figsize=(10, 2.9), dpi=80)
shown = axes[0].imshow(colour_weights[0], cmap="viridis")
axes[0].set(title="weights (64×64)", xlabel="key patch", ylabel="query patch")
fig.colorbar(shown, ax=axes[0], fraction=0.046)
for ax, query in zip(axes[1:], [34, 19, 54]):  # orange suit, face, dark helmet
    row = colour_weights[0, query].reshape(8, 8)  # (8, 8): one weight per key patch
    ax.imshow(image[0].permute(1, 2, 0))
    shown = ax.imshow(row.repeat_interleave(8, 0).repeat_interleave(8, 1), cmap="magma", alpha=0.75)
    ax.add_patch(plt.Rectangle((query % 8 * 8 - 0.5, query // 8 * 8 - 0.5), 8, 8, fill=False, ec="cyan", lw=2))
    ax.set(title=f"query patch {query}", xticks=[], yticks=[])
    fig.colorbar(shown, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# Two things to read off. First, a query (cyan square) can take from anywhere in the image: the
# orange-suit patch collects weight from orange patches all over the suit. Nothing ties attention to
# neighbours, unlike a convolution: that is the "global receptive field". Second, a dot product is
# not a similarity: it rewards keys that point the same way *and are long*. The vertical stripes
# in the matrix are keys with extreme colours (the white shuttle, the dark helmet) that many
# queries attend to, which is why the face patch looks mostly at the bright shuttle rather than
# at other skin. Trained $W_Q$ and $W_K$ learn which directions matter; lesson 09 shows the
# attention maps of trained models.
#
# ## 7. The price: O(N²) time and memory
#
# The weight matrix has N×N entries per head, so memory grows with the square of the number of
# tokens, and so does the time to fill it. The memory is arithmetic; here it is for ViT-B/16 (12
# heads, float32), one image, one layer, as the image grows:

# %% tags=["nbval-check-output"]
print(f"{'image':>9} {'tokens N':>9} {'N×N×12 heads×4 bytes':>22}")
for side in [224, 384, 512, 1024]:
    n = (side // 16) ** 2 + 1  # patches + class token
    print(f"{side:>5} px  {n:>9} {n * n * 12 * 4 / 2**20:>18.1f} MiB")

# %% [markdown]
# The time we measure: the median of several runs of `attention` with one head of size d = 64,
# for N from 64 up. On log-log axes a power law $t \propto N^p$ is a straight line of slope $p$; we
# fit it on the larger N, where the N² work dominates fixed overheads. (Timings vary from run to
# run, more so on a machine doing other work; the slope is the robust number.)

# %%
def median_seconds(fn, repeats, number):
    """Median over `repeats` measurements of the mean time of `number` calls."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


sizes = [64, 256, 1024, 2048] if is_quick() else [64, 128, 256, 512, 1024, 2048, 4096]
repeats = 3 if is_quick() else 7
seconds, matrix_bytes = [], []
with torch.no_grad():
    for n in sizes:
        qn = torch.randn(1, n, 64)
        seconds.append(median_seconds(lambda: attention(qn, qn, qn), repeats, number=max(1, 2048 // n)))
        matrix_bytes.append(attention(qn, qn, qn)[1].nelement() * 4)
large = np.array(sizes) >= 512
time_slope = np.polyfit(np.log(np.array(sizes)[large]), np.log(np.array(seconds)[large]), 1)[0]
memory_slope = np.polyfit(np.log(sizes), np.log(matrix_bytes), 1)[0]
hardware = hardware_name("cpu")
print(f"{hardware}; fitted slopes: time {time_slope:.2f}, memory {memory_slope:.2f}")
for n, s in zip(sizes, seconds):
    print(f"N = {n:>5}: {s * 1e3:8.2f} ms")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
ax.loglog(sizes, seconds, "o-", label=f"time (fitted slope {time_slope:.2f})")
ax.set(xlabel="tokens N", ylabel="seconds per call", title=f"Attention cost, d = 64 ({hardware})")
twin = ax.twinx()
twin.loglog(sizes, matrix_bytes, "s--", color="C1", label=f"weights memory (slope {memory_slope:.2f})")
twin.set_ylabel("bytes of the N×N weights")
fig.legend(loc="upper left", bbox_to_anchor=(0.13, 0.88), fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The memory slope is exactly 2. The time slope, fitted on N ≥ 512, is printed above for this run;
# on the CPU that produced the saved outputs (named in the header) it came out
# above 2, because once the N×N matrix outgrows the CPU caches (4096² floats are 64 MiB)
# the softmax waits on memory as well as arithmetic. Below a few hundred tokens fixed costs
# dominate and the curve is flatter. Either way: doubling the image side quadruples N and
# multiplies the attention cost by about 16, the reason for lesson 11 (windows) and lesson 13
# (efficient attention).
#
# ## 8. Check against `vit_lessons`
#
# The package's `scaled_dot_product_attention` is the function you just wrote; later lessons
# import it from there.

# %% tags=["nbval-check-output"]
from vit_lessons.attention import scaled_dot_product_attention

for mask in [None, causal, padding]:
    mine, mine_w = attention(q5, k5, v5, mask)
    library, library_w = scaled_dot_product_attention(q5, k5, v5, mask)
    assert torch.allclose(mine, library) and torch.allclose(mine_w, library_w)
print("attention == vit_lessons.attention.scaled_dot_product_attention (no mask, causal, padding)")

# %% [markdown]
# ## Summary
#
# - Attention mixes tokens: each query takes a weighted average of the values, weighted by a
#   softmax of query–key dot products, $\text{softmax}(QK^\top/\sqrt{d})V$.
# - The $1/\sqrt{d}$ keeps the score variance at 1 whatever the width; without it the softmax
#   saturates and its gradient vanishes (section 4).
# - Boolean masks: True = may attend, applied as $-\infty$ before the softmax; shape anything that
#   broadcasts to (..., Nq, Nk), e.g. (B, 1, 1, N) for key padding.
# - Time and memory grow as N²: we measured the slopes above.
#
# ## Exercises
#
# Fill in each stub and run the cell after it. `ex.hint()` gives a hint, `ex.solution()` a
# reference solution.
#
# **1. Attention from scratch.** Write `my_attention(q, k, v, mask=None)` returning `(out, weights)`,
# for any number of leading dimensions, with a boolean mask (True = may attend).

# %%
# EXERCISE 04.attention: my_attention
def my_attention(q, k, v, mask=None):
    raise NotImplementedError  # your code here


# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("04.attention")
ex.check(my_attention)

# %% [markdown]
# **2. A key-padding mask.** Given `lengths` (B,), the number of real tokens in each sample, and
# `num_tokens` N, return the boolean mask of shape (B, 1, 1, N) that lets every query attend to
# the real tokens only.

# %%
# EXERCISE 04.padding_mask: my_padding_mask
def my_padding_mask(lengths, num_tokens):
    raise NotImplementedError  # your code here


# %% tags=["nbval-check-output"]
ex = get_exercise("04.padding_mask")
ex.check(my_padding_mask)

# %% [markdown]
# **3. Try this.** In section 6, divide the scores by a *temperature* τ as well
# (`attention(features / τ**0.5, features / τ**0.5, features)`) for τ = 0.1 and τ = 10. Which τ gives
# sharper maps? What happens to the diagonal of the weight matrix as τ → 0?
#
# **Next:** [lesson 05](05_multi_head_attention.ipynb) splits attention into several heads.
