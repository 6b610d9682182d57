# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 05: multi-head attention
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/05_multi_head_attention.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** multi-head self-attention as ViT (and timm) computes it: one fused
# `qkv` projection, split into h heads of size d = D/h, attention in every head at once, heads
# merged back, an output projection `proj`. You will check it against `vit_lessons` and against
# PyTorch's own `nn.MultiheadAttention`, and measure the effect of a mistake found in popular
# tutorials: scaling the scores by $\sqrt{D}$ (the embedding size) instead of $\sqrt{d}$ (the
# head size).
#
# **Prerequisites:** lesson 04 (scaled dot-product attention); lesson 02 (patch embedding) helps.
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
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from vit_lessons.attention import scaled_dot_product_attention  # lesson 04
from vit_lessons.patches import PatchEmbedding  # lesson 02
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
print(run_banner(device))

# %% [markdown]
# ## 1. Tokens
#
# The cat photograph from scikit-image, 64×64 pixels, cut into 8×8 patches and embedded (lesson 02)
# into 64 tokens of width D = 48.

# %% tags=["nbval-check-output"]
photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float() / 255  # (C, H, W)
image = F.interpolate(photo[None], size=(64, 64), mode="area")  # (B, C, H, W)
embed = PatchEmbedding(img_size=64, patch_size=8, in_chans=3, embed_dim=48)
with torch.no_grad():
    tokens = embed(image)  # (B, N, D)
B, N, D = tokens.shape
print("image :", tuple(image.shape))
print("tokens:", tuple(tokens.shape), "(B, N, D)")

# %% [markdown]
# ## 2. Why several heads, and how to split
#
# One attention layer computes one weighted average per token: one notion of "relevant". With h
# **heads**, each head gets its own queries, keys and values of size d = D/h, attends on its own,
# and the h results are concatenated. The same parameters and the same projection arithmetic, but h
# different ways to mix tokens (one head can follow colour, another position, ...). What does grow
# with h is the attention itself: h matrices of N × N weights instead of one, each computed,
# softmaxed and (outside a fused kernel) stored, so its memory and softmax cost are h times larger.
#
# The split costs nothing: project to D features as before, then read them as h groups of d,
# `(B, N, D) → (B, N, h, d)`, and move the head axis forward, `→ (B, h, N, d)`, so that each head
# is a batch of its own for the matrix products.

# %% tags=["nbval-check-output"]
num_heads = 4
head_dim = D // num_heads
to_query, to_key, to_value = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)


def split_heads(x):
    return x.reshape(B, N, num_heads, head_dim).transpose(1, 2)  # (B, N, D) → (B, h, N, d)


with torch.no_grad():
    q, k, v = split_heads(to_query(tokens)), split_heads(to_key(tokens)), split_heads(to_value(tokens))
print("q, k, v:", tuple(q.shape), "(B, h, N, d) with h =", num_heads, "and d =", head_dim)

# %% [markdown]
# ## 3. Attention in every head at once
#
# Lesson 04's function works on any leading dimensions, so the heads need no loop. Note what $d$
# is inside it: `q.shape[-1]`, the **head** size.

# %% tags=["nbval-check-output"]
heads_out, weights = scaled_dot_product_attention(q, k, v)
print("weights  :", tuple(weights.shape), "(B, h, N, N): one N×N matrix per head")
print("heads out:", tuple(heads_out.shape), "(B, h, N, d)")

# %% [markdown]
# ## 4. Merge the heads: transpose, then reshape
#
# To concatenate the heads per token we undo the split: `(B, h, N, d) → (B, N, h, d) → (B, N, D)`.
# The transpose matters. `reshape` only re-reads memory in order, so reshaping `(B, h, N, d)`
# straight to `(B, N, D)` glues together *different tokens of the same head*. A labelled tensor
# shows it: entry = 100·head + 10·token + feature, for 2 heads, 3 tokens, 2 features.

# %% tags=["nbval-check-output"]
labels = torch.tensor([[[100 * h + 10 * n + f for f in range(2)] for n in range(3)] for h in range(2)])[None]  # (1, h, N, d)
print("right: transpose(1, 2).reshape(1, 3, 4)\n", labels.transpose(1, 2).reshape(1, 3, 4)[0])
print("wrong: reshape(1, 3, 4)\n", labels.reshape(1, 3, 4)[0])

# %% [markdown]
# In the right version, row *n* holds token *n* of head 0, then token *n* of head 1. In the wrong one,
# row 0 holds tokens 0 and 1 of head 0: tokens are scrambled, and no error is raised because the
# shapes fit. Then an output projection `proj` (Linear D → D) mixes the heads' features.

# %% tags=["nbval-check-output"]
proj = nn.Linear(D, D)
with torch.no_grad():
    merged = heads_out.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
    separate_out = proj(merged)  # (B, N, D)
print("merged:", tuple(merged.shape), "| after proj:", tuple(separate_out.shape))

# %% [markdown]
# ## 5. One fused `qkv` projection
#
# Three Linear layers D → D are one Linear D → 3D with the three weight matrices stacked: one
# matrix product instead of three. timm, and pretrained ViT weights, use this layout: the output
# is `[q | k | v]`, and inside each part the heads sit side by side (head *j* is features *j·d*
# to *(j+1)·d*). So the 3D outputs are read as `(B, N, 3, h, d)`, not `(B, N, h, 3, d)`.

# %% tags=["nbval-check-output"]
qkv = nn.Linear(D, 3 * D)
with torch.no_grad():
    qkv.weight.copy_(torch.cat([to_query.weight, to_key.weight, to_value.weight]))  # (3D, D)
    qkv.bias.copy_(torch.cat([to_query.bias, to_key.bias, to_value.bias]))  # (3D,)
    fused = qkv(tokens).reshape(B, N, 3, num_heads, head_dim)  # (B, N, 3, h, d)
    q2, k2, v2 = fused.permute(2, 0, 3, 1, 4)  # 3 × (B, h, N, d)
    wrong_q = qkv(tokens).reshape(B, N, num_heads, 3, head_dim).permute(3, 0, 2, 1, 4)[0]
print("qkv(tokens):", (B, N, 3 * D), "→ q, k, v:", tuple(q2.shape))
print("same q, k, v as three Linears:", all(torch.allclose(a, b, atol=1e-6) for a, b in [(q2, q), (k2, k), (v2, v)]))
print("read as (B, N, h, 3, d) instead:", torch.allclose(wrong_q, q))

# %% [markdown]
# ## 6. The whole module
#
# Put together, with timm's names (`qkv`, `proj`) so that pretrained weights load:


# %%
class MyMultiHeadAttention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens):
        B, N, D = tokens.shape
        q, k, v = self.qkv(tokens).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        heads, _ = scaled_dot_product_attention(q, k, v)  # (B, h, N, d), scaled by sqrt(head_dim)
        return self.proj(heads.transpose(1, 2).reshape(B, N, D))  # (B, N, D)


mine = MyMultiHeadAttention(D, num_heads)
with torch.no_grad():
    mine.qkv.load_state_dict(qkv.state_dict())
    mine.proj.load_state_dict(proj.state_dict())
    print("output:", tuple(mine(tokens).shape), "| equals the step-by-step version:", torch.allclose(mine(tokens), separate_out, atol=1e-6))

# %% [markdown]
# ## 7. The per-head scaling mistake
#
# Inside a head the dot product $q \cdot k$ is a sum of **d** terms, so its variance is about $d$
# and the right divisor is $\sqrt{d}$, with d = D/h. A popular tutorial (the einsum `SelfAttention`
# of one of this course's source texts) divides by $\sqrt{D}$, the embedding size: the scores come
# out $\sqrt{h}$ times too small and the softmax too flat. How much flatter? Random unit-variance
# queries and keys for ViT-B's width D = 768 and 197 tokens, per head count:

# %%
def attention_spread(num_heads, divide_by, dim=768, tokens_n=197, seed=0):
    """(score std, mean largest weight, entropy / log N) for random N(0, 1) queries and keys."""
    generator = torch.Generator().manual_seed(seed)
    d = dim // num_heads
    q, k = torch.randn(2, num_heads, tokens_n, d, generator=generator)
    scores = q @ k.transpose(-2, -1) / math.sqrt(divide_by(d))
    w = scores.softmax(-1)
    entropy = -(w * w.clamp_min(1e-12).log()).sum(-1).mean().item() / math.log(tokens_n)
    return scores.std().item(), w.max(-1).values.mean().item(), entropy


head_counts = [1, 3, 6, 12, 16]
right = [attention_spread(h, lambda d: d) for h in head_counts]
wrong = [attention_spread(h, lambda d: 768) for h in head_counts]
print(f"{'heads':>5} {'d':>4} | {'score std':>9} {'wrong':>6} | {'max weight':>10} {'wrong':>6} | {'entropy/log N':>13} {'wrong':>6}")
for h, (s1, m1, e1), (s2, m2, e2) in zip(head_counts, right, wrong):
    print(f"{h:>5} {768 // h:>4} | {s1:>9.2f} {s2:>6.2f} | {m1:>10.3f} {m2:>6.3f} | {e1:>13.3f} {e2:>6.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.3), dpi=80)
ax.plot(head_counts, [m for _, m, _ in right], "o-", label="÷ sqrt(head_dim) (right)")
ax.plot(head_counts, [m for _, m, _ in wrong], "s-", label="÷ sqrt(embed_dim) (the mistake)")
ax.axhline(1 / 197, color="gray", ls=":", label="uniform (1/197)")
ax.set(xlabel="number of heads h (D = 768)", ylabel="mean largest weight", title="Scaling per head vs per embedding")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# With one head the two agree (d = D). With ViT-B's 12 heads the wrong scores have a spread
# $\sqrt{12} ≈ 3.5$ times too small and the attention is close to uniform (entropy near its
# maximum, 1 in the table's units). A model trained from scratch with the mistake can partly
# compensate by growing $W_Q$, but it starts with blurred attention, and weights trained the right
# way (every pretrained ViT) give different outputs. The mistake acts as a softmax temperature
# $\sqrt{h}$ too high, so how much it changes the output depends on how sharp the attention is.
# On our cat tokens, with queries and keys scaled so that the right scores have a spread of 1 (as
# at initialisation) up to 8 (sharper attention, as training produces):

# %%
def output_change(score_std, heads=num_heads):
    """Relative change of the output when ÷sqrt(D) replaces ÷sqrt(d), for scores of spread ~score_std."""
    module = MyMultiHeadAttention(D, heads)
    d = D // heads
    with torch.no_grad():
        module.qkv.weight.normal_(0, 1 / math.sqrt(D) / tokens.std().item())  # q, k entries of variance ~1
        module.qkv.weight[: 2 * D] *= math.sqrt(score_std)  # q·k/sqrt(d) now has a spread ~score_std
        right_out = module(tokens)
        q_, k_, v_ = module.qkv(tokens).reshape(B, N, 3, heads, d).permute(2, 0, 3, 1, 4)
        flat = ((q_ @ k_.transpose(-2, -1)) / math.sqrt(D)).softmax(-1) @ v_  # the mistake: ÷ sqrt(D)
        wrong_out = module.proj(flat.transpose(1, 2).reshape(B, N, D))
    return ((wrong_out - right_out).norm() / right_out.norm()).item()


torch.manual_seed(0)
for score_std in [1, 2, 4, 8]:
    print(f"score spread {score_std}: output changes by {output_change(score_std):.0%} (h = {num_heads})")

# %% [markdown]
# At initialisation-like spreads the two versions hardly differ (the right attention is nearly
# flat too, see the table's max weight); the sharper the attention the model learns, the more the
# $\sqrt{D}$ version departs from it. The table printed above is from the saved full-mode run.
#
# ## 8. Check against `vit_lessons` and against PyTorch
#
# `vit_lessons.attention.MultiHeadSelfAttention` is this module (with dropout options and a
# `fused_attn` switch that calls `F.scaled_dot_product_attention`). Same weights, same output,
# on both paths:

# %% tags=["nbval-check-output"]
from vit_lessons.attention import MultiHeadSelfAttention

library = MultiHeadSelfAttention(D, num_heads).eval()
library.load_state_dict(mine.state_dict())  # same parameter names and shapes
with torch.no_grad():
    for fused_attn in (True, False):
        library.fused_attn = fused_attn
        assert torch.allclose(library(tokens), mine(tokens), atol=1e-6)
print("MyMultiHeadAttention == vit_lessons MultiHeadSelfAttention (fused_attn True and False)")

# %% [markdown]
# PyTorch's `nn.MultiheadAttention` uses the same fused layout under other names:
# `in_proj_weight`/`in_proj_bias` are our `qkv`, `out_proj` our `proj`. Copy the weights and
# compare the outputs and every head's attention weights:

# %% tags=["nbval-check-output"]
torch_mha = nn.MultiheadAttention(D, num_heads, batch_first=True).eval()
with torch.no_grad():
    torch_mha.in_proj_weight.copy_(mine.qkv.weight)
    torch_mha.in_proj_bias.copy_(mine.qkv.bias)
    torch_mha.out_proj.load_state_dict(mine.proj.state_dict())
    torch_out, torch_weights = torch_mha(tokens, tokens, tokens, need_weights=True, average_attn_weights=False)
    q3, k3, v3 = mine.qkv(tokens).reshape(B, N, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
    _, my_weights = scaled_dot_product_attention(q3, k3, v3)  # (B, h, N, N)
print("output :", tuple(torch_out.shape), torch.allclose(torch_out, mine(tokens), atol=1e-5))
print("weights:", tuple(torch_weights.shape), torch.allclose(torch_weights, my_weights, atol=1e-6))

# %% [markdown]
# ## 9. Heads are free
#
# The heads split the same D × 3D projection; they add no parameters, and the score products cost the
# same multiply-adds (h products of N×d by d×N instead of one of N×D by D×N). They produce h score
# matrices of N × N instead of one, though: h times the memory and softmax work of one head.

# %% tags=["nbval-check-output"]
for h in [1, 2, 4, 8, 16]:
    print(f"h = {h:>2}, d = {D // h:>2}: {sum(p.numel() for p in MultiHeadSelfAttention(D, h).parameters()):,} parameters")

# %% [markdown]
# ## 10. What the heads of a trained model do
#
# Everything above ran on random weights: it shows the mechanics, not what heads learn. The course
# checkpoint `cifar10_vit`, shipped with the package, is a trained ViT (lesson 07's model at width
# D = 192 with h = 3 heads of d = 64 in each of its 6 layers, trained on CIFAR-10 in lesson 08). We
# show it three photographs from scikit-image shrunk to its 32×32 input. For one query, the patch at
# the centre of the image (outlined), each panel shows how much that patch reads from every patch in
# one head: the three heads of the first layer, then of the last. `vit_lessons.interpret.attention_maps`
# captures the weights (lesson 09 shows how).

# %% tags=["nbval-check-output"]
from matplotlib.patches import Rectangle

from vit_lessons.data import normalize
from vit_lessons.interpret import attention_distance, attention_maps, token_heatmap
from vit_lessons.train import load_course_checkpoint


def small_photo(photo):
    """(H, W, 3) uint8 → (3, 32, 32) float in [0, 1]: the centre square, shrunk with antialiasing."""
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    square = torch.from_numpy(photo[top : top + side, left : left + side]).permute(2, 0, 1).float() / 255
    return F.interpolate(square[None], size=(32, 32), mode="bilinear", antialias=True)[0].clamp(0, 1)


trained, info = load_course_checkpoint("cifar10_vit", return_info=True)
photo_names = ["chelsea", "astronaut", "coffee"]
pictures = torch.stack([small_photo(getattr(data, name)()) for name in photo_names])  # (3, 3, 32, 32)
with torch.no_grad():
    trained_maps = attention_maps(trained, normalize(pictures * 255, info["mean"], info["std"]))  # 6 × (B, h, N, N)
grid, prefix = trained.patch_embed.grid_size, trained.num_prefix_tokens
query = prefix + (grid[0] // 2) * grid[1] + grid[1] // 2  # the patch at row 4, column 4
print(f"{len(trained_maps)} layers of {tuple(trained_maps[0].shape)} = (images, heads, queries, keys)")

# %%
layers = [0, len(trained_maps) - 1]
heads = trained_maps[0].shape[1]
fig, axes = plt.subplots(len(pictures), 1 + heads * len(layers), figsize=(10, 4.6), dpi=80)
for row, picture in enumerate(pictures):
    axes[row, 0].imshow(picture.permute(1, 2, 0))
    axes[row, 0].set_ylabel(photo_names[row], fontsize=9)
    for column, (layer, head) in enumerate([(l, h) for l in layers for h in range(heads)], start=1):
        heat = token_heatmap(trained_maps[layer][row, head, query], grid, prefix)  # (8, 8) in [0, 1]
        axes[row, column].imshow(heat, cmap="inferno", vmin=0, vmax=1)
        axes[row, column].add_patch(Rectangle((grid[1] // 2 - 0.5, grid[0] // 2 - 0.5), 1, 1, fill=False, color="cyan"))
        axes[0, column].set_title(f"layer {layer + 1}, head {head}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("where the centre patch looks, per head (each panel scaled to its own maximum)", fontsize=10)
plt.show()

# %% [markdown]
# One number per head summarises these pictures: the mean *attention distance*, the average
# distance in pixels between a query patch and the patches it reads, weighted by the attention
# (the ViT paper's Figure 7; lesson 09 draws it for every layer). Uniform attention over this 8×8
# grid of 4-pixel patches would score about 16.5 px. In the trained model the heads of one layer
# differ:

# %% tags=["nbval-check-output"]
distance = attention_distance(trained_maps, grid, trained.patch_embed.patch_size, prefix)  # (L, h) in pixels
for layer in layers:
    print(f"layer {layer + 1}: " + ", ".join(f"head {h} {distance[layer, h]:.1f} px" for h in range(heads)))

# %% [markdown]
# The heads of one layer look differently: different patches light up in each panel, and their
# reach differs (the printout). None of them is strictly local in this small model, though: every
# head spreads over much of the image. Lesson 09 measures all six layers and what training changed.

# %% [markdown]
# ## Summary
#
# - Multi-head attention = one fused `qkv` Linear (D → 3D, read as (B, N, 3, h, d)), attention in
#   each of the h heads, heads merged with `transpose(1, 2).reshape(B, N, D)`, then `proj`.
# - Scale by $\sqrt{d}$ with d the **head** size; $\sqrt{D}$ makes attention about $\sqrt{h}$ times
#   too flat (section 7).
# - In a trained ViT the heads of a layer attend differently (section 10).
# - It equals `vit_lessons`' `MultiHeadSelfAttention` and `torch.nn.MultiheadAttention` once the
#   weights are copied.
#
# ## Exercises
#
# Fill in each stub and run the cell after it; `ex.hint()` and `ex.solution()` help.
#
# **1. Multi-head attention.** Write the class `MyAttention(dim, num_heads, qkv_bias=True)` with
# `qkv` and `proj` as above, forward (B, N, D) → (B, N, D). The check loads random weights into
# it and compares it with `vit_lessons` on several sizes (odd token counts, 1 to 8 heads, with and
# without qkv bias), and names the usual mistakes.

# %%
# EXERCISE 05.multi_head_attention: MyAttention
class MyAttention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        raise NotImplementedError  # your code here

    def forward(self, tokens):
        raise NotImplementedError  # your code here


# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("05.multi_head_attention")
ex.check(MyAttention)

# %% [markdown]
# **2. Count the parameters.** Write `my_parameter_count(dim, num_heads, qkv_bias=True)` returning
# the number of parameters of multi-head self-attention, without building it.

# %%
# EXERCISE 05.parameter_count: my_parameter_count
def my_parameter_count(dim, num_heads, qkv_bias=True):
    raise NotImplementedError  # your code here


# %% tags=["nbval-check-output"]
ex = get_exercise("05.parameter_count")
ex.check(my_parameter_count)

# %% [markdown]
# **3. Try this.** In section 7, call `output_change(4, heads=h)` for h = 1, 2, 4, 8, 16. How does
# the damage done by the $\sqrt{D}$ mistake grow with the number of heads, and why is it zero for h = 1?
#
# **Next:** [lesson 06](06_encoder_block.ipynb) wraps attention and an MLP into the encoder block.
