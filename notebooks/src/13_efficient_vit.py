# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 13: efficient ViTs: fused attention, `torch.compile`, token merging
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/13_efficient_vit.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build and measure:**
#
# 1. attention three ways (written out, the "efficient attention" of common tutorials, and PyTorch's
#    fused `F.scaled_dot_product_attention`), timed and memory-profiled against sequence length;
# 2. `torch.compile` on a ViT: compile time against steady-state speed-up;
# 3. **token merging** (ToMe; Bolya et al., ICLR 2023): bipartite soft matching with proportional
#    attention, applied to a trained ViT without retraining: accuracy against throughput, and
#    which patches were merged;
# 4. an inference throughput table: ViT-Ti/S against ResNet-18/50.
#
# **Prerequisites:** lessons 04–07 (attention, the encoder block, the ViT).
#
# **Run time:** 46 s in full mode on an Intel Xeon CPU with 2 cores (Intel(R) Xeon(R) Processor),
# idle, the machine that saved these outputs; 10 s of it trained the digits ViT (printed below), and
# `torch.compile` took 1.3 s because Inductor's on-disk cache held the kernels from an earlier run
# (a first compile on a machine takes far longer). Quick mode (`VIT_LESSONS_QUICK=1`) skips `torch.compile`, trains
# one epoch and benchmarks less: a few seconds. GPU: not measured yet. Every time and speed below was
# measured by the run that saved this notebook, on the hardware printed by the setup cell; yours will
# differ, the ratios less than the absolute figures.

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from vit_lessons import create_model
from vit_lessons.efficient import (
    apply_token_merging,
    attention_benchmark,
    bipartite_soft_matching,
    compile_benchmark,
    explicit_attention,
    inference_benchmark,
    masked_attention,
    merge_weighted,
    merged_image,
    patch_labels,
    sdpa_backend,
    throughput,
    token_schedule,
    tome_speedup,
)
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
QUICK = is_quick()
print(run_banner(device), "| torch", torch.__version__)

# %% [markdown]
# ## 1. Attention three ways
#
# Written out, attention stores the (N, N) score matrix of every head: memory grows as N². A
# widely copied tutorial offers an "efficient attention" that is the same computation plus a mask,
# which saves nothing. PyTorch's `F.scaled_dot_product_attention` (SDPA) instead dispatches to a
# fused kernel (flash attention or the memory-efficient kernel) that walks over key blocks with
# a running softmax and never stores the matrix. All three give the same numbers:

# %% tags=["nbval-check-output"]
def attention_written_out(q, k, v):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, N, N): the memory cost
    return scores.softmax(dim=-1) @ v  # (B, h, N, d)


q, k, v = torch.randn(3, 1, 6, 197, 64).unbind(0)  # (B, h, N, d): ViT-S at 224 px
fused = F.scaled_dot_product_attention(q, k, v)
print("shapes:", tuple(q.shape), "->", tuple(fused.shape))
print("written out = SDPA:", torch.allclose(attention_written_out(q, k, v), fused, atol=1e-5))
print("tutorial's masked 'efficient' attention = SDPA:", torch.allclose(masked_attention(q, k, v), fused, atol=1e-5))
print("= vit_lessons.efficient.explicit_attention:", torch.equal(attention_written_out(q, k, v), explicit_attention(q, k, v)))

# %% [markdown]
# Which kernel did SDPA use? PyTorch picks one from the device, dtype and shapes; the profiler
# shows its name. On a CPU it is usually the CPU flash kernel; on a CUDA GPU flash attention
# (fp16/bf16), the memory-efficient kernel (also fp32), or cuDNN.

# %%
print("SDPA backend here:", sdpa_backend(q.to(device), k.to(device), v.to(device)))

# %% [markdown]
# Time and peak memory against sequence length. On a GPU, peak memory is
# `torch.cuda.max_memory_allocated`; on a CPU it comes from the PyTorch profiler's memory events
# (`profile_memory=True`). One image, 6 heads of 64 dimensions (ViT-S).

# %%
seq_lens = (64, 256, 512) if QUICK else (64, 256, 1024, 2048, 4096)
rows = attention_benchmark(seq_lens, num_heads=6, head_dim=64, device=device, repeats=2 if QUICK else 3)
print(f"{'method':18} {'N':>5} {'ms':>9} {'peak MiB':>9}  backend")
for row in rows:
    print(f"{row['method']:18} {row['seq_len']:>5} {row['seconds'] * 1e3:9.2f} {row['peak_mib']:9.1f}  {row['backend']}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), dpi=80)
for method in ("explicit", "masked (tutorial)", "sdpa"):
    mine = [row for row in rows if row["method"] == method]
    xs = [row["seq_len"] for row in mine]
    axes[0].plot(xs, [row["seconds"] * 1e3 for row in mine], "o-", label=method)
    axes[1].plot(xs, [max(row["peak_mib"], 1e-3) for row in mine], "o-", label=method)
axes[0].set(xscale="log", yscale="log", xlabel="sequence length N", ylabel="time (ms)", title=f"Attention time ({device})")
axes[1].set(xscale="log", yscale="log", xlabel="sequence length N", ylabel="peak memory (MiB)", title="Attention peak memory")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The written-out and the "efficient" tutorial version grow as N² in memory (4× per doubling of N);
# SDPA's fused kernel grows as N. Time is O(N²) for all of them (every query still meets every key),
# but the fused kernel avoids writing and re-reading the big matrix. A ViT-S at 224 px has N = 197,
# where the matrix is small; the gap matters for high resolutions, small patches and video.
# `vit_lessons`' attention uses SDPA (`fused_attn=True`) unless you ask for the weights.
#
# ## 2. `torch.compile`
#
# `torch.compile` traces the model into a graph and generates fused kernels (Triton on GPU, C++ on
# CPU). The first call pays the compile time; later calls may run faster. Worth it when the model
# will be called many times with the same shapes (a long training run, a server), not for a
# quick experiment. Measured on the CIFAR ViT, batch 32:

# %%
if QUICK:
    print("quick mode: torch.compile skipped (it takes tens of seconds on a CPU); run in full mode to measure it")
else:
    import logging

    # On a CPU-only machine with a CUDA build of PyTorch, Inductor logs that it found no CUDA runtime: noise here
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    torch._dynamo.reset()
    compiled = compile_benchmark(create_model("vit_cifar_patch4_32").to(device), torch.randn(32, 3, 32, 32, device=device))
    for key, value in compiled.items():
        print(f"{key:17} {value:.4g}" if isinstance(value, float) else f"{key:17} {value}")

# %% [markdown]
# `break_even_calls` is how many calls the compile time takes to pay back: about 1,300 here, where
# the compiled model was 1.07x faster (None when the compiled model is not faster). The compile time also depends on Inductor's on-disk cache: the
# first compile on a machine generates and builds the kernels, a later one finds them in the cache and
# can be many times faster. `compile_seconds` above is this run's; it and the speed-up vary from run
# to run.
#
# ## 3. Token merging (ToMe)
#
# Most of a ViT's cost is per token, and many tokens are redundant (sky, background). ToMe removes
# r tokens in **every block** by merging similar ones, so the work falls block after block. In each
# block, after attention:
#
# 1. split the tokens alternately into sets A and B (the class token takes no part);
# 2. link every A token to its most similar B token (cosine similarity of the attention **keys**,
#    averaged over heads);
# 3. merge the r A tokens with the most similar links into their B partners, as averages weighted
#    by **size** (how many patches each token already holds);
# 4. in later attention, add log(size) to each key's logit (**proportional attention**), so a
#    token that stands for s patches gets the weight s copies would get.
#
# Bipartite matching needs no iterative clustering, so it costs little. A toy example: the 4th
# token is almost the 3rd, so with r = 1 those two are merged (weighted by their sizes 1 and 3):

# %% tags=["nbval-check-output"]
metric = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.1]]])  # (B, n, c): A = 0, 2; B = 1, 3
plan = bipartite_soft_matching(metric, r=1)
print("A tokens kept:", plan.kept_a.tolist(), "| merged:", plan.merged_a.tolist(), "into B:", plan.into_b.tolist())
tokens = torch.tensor([[[0.0], [10.0], [4.0], [8.0]]])
size = torch.tensor([[[1.0], [1.0], [1.0], [3.0]]])
merged, new_size = merge_weighted(plan, tokens, size)
print("merged tokens:", merged.flatten().tolist(), "sizes:", new_size.flatten().tolist())

# %% [markdown]
# `apply_token_merging(model, r)` patches every block of a `VisionTransformer` in place (the
# weights are untouched) and returns a handle; `handle.remove()` restores the model exactly. With
# 64 patches + class token and r = 8 in each of 4 blocks, the token count follows the schedule
# 65 → 57 → 49 → 41 → 33. An r larger than a block can merge (half its patch tokens) is clamped.

# %% tags=["nbval-check-output"]
vit = create_model("vit_cifar_patch4_32").eval()
images = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    before = vit(images)
    with apply_token_merging(vit, 8) as handle:
        vit(images)
        print("tokens per block:", handle.token_counts, "| schedule:", token_schedule(65, 8, 4))
        print("sizes sum to", handle.size.sum(dim=(1, 2)).tolist())
    print("after remove(), outputs identical:", torch.equal(vit(images), before))
print("r = 100, clamped:", token_schedule(65, 100, 4))

# %% [markdown]
# ### A trained ViT to merge
#
# ToMe needs no retraining, but accuracy only means something on a trained model. We train one
# quickly on sklearn's digits, upsampled to 16×16 and cut into 2×2 patches: 64 tokens + class
# token, enough for merging to matter (quick mode: 1 epoch; full mode: 10).

# %%
digits = load_digits()
pixels = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16  # (1797, 1, 8, 8)
pixels = F.interpolate(pixels, size=16, mode="bilinear", align_corners=False)  # (1797, 1, 16, 16)
pixels = (pixels - pixels.mean()) / pixels.std()
labels = torch.tensor(digits.target)
order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))
train_x, train_y, test_x, test_y = pixels[order[:1400]], labels[order[:1400]], pixels[order[1400:]], labels[order[1400:]]

torch.manual_seed(0)
digit_vit = create_model("vit_digits_patch2_8", img_size=16, embed_dim=64, depth=4, num_heads=4)
epochs = 1 if QUICK else 10
optimizer = torch.optim.AdamW(digit_vit.parameters(), lr=2e-3, weight_decay=0.05)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=epochs * 22, pct_start=0.15)
start = time.perf_counter()
for epoch in range(epochs):
    digit_vit.train()
    for index in torch.randperm(len(train_x)).split(64):
        loss = F.cross_entropy(digit_vit(train_x[index]), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
digit_vit.eval()
print(f"trained {epochs} epochs in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# Accuracy and speed for several r, applied to the same trained weights. Speed is measured as in
# `tome_speedup`: images/s on the whole test set in one batch, with r and r = 0 alternated over a
# few rounds, so that a change in background load hits both; the figure is the median ratio.

# %%
def test_accuracy(model):
    with torch.no_grad():
        return (model(test_x).argmax(1) == test_y).float().mean().item()


results = []
for r in (0, 8, 16) if QUICK else (0, 2, 4, 8, 12, 16):
    with apply_token_merging(digit_vit, r) as handle:
        accuracy = test_accuracy(digit_vit)
        tokens_out = handle.token_counts[-1]
    speed = tome_speedup(digit_vit, r, batch_size=len(test_x), img_size=16, repeats=1 if QUICK else 2, rounds=1 if QUICK else 3)
    results.append((r, accuracy, speed["ratio"], tokens_out))
print(f"{'r':>3} {'accuracy':>9} {'speed-up':>9} {'tokens out':>11}")
for r, accuracy, ratio, tokens_out in results:
    print(f"{r:>3} {accuracy:9.1%} {ratio:8.2f}x {tokens_out:>11}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
ax.plot([s for _, _, s, _ in results], [a * 100 for _, a, _, _ in results], "o-")
for r, accuracy, ratio, _ in results:
    ax.annotate(f"r={r}", (ratio, accuracy * 100), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set(xlabel="speed-up over r = 0 (images/s ratio)", ylabel="test accuracy (%)", title="Token merging on a trained digits ViT")
plt.show()

# %% [markdown]
# This small model is cheap per token (64 dimensions), so fixed per-batch costs (the patch
# embedding, the head, the matching itself) weigh more than in a large ViT: compare its speed-up
# with ViT-S's below. The r = 0 row runs the merging code path without merging anything: its 0.80x
# is that path's own cost at this tiny size plus timing scatter, so read the other rows against it.
# Up to r = 8 the merged model was slower than the plain one; r = 12 (1.08x) and r = 16 (1.25x) were
# faster. Read the accuracy cost of each r from the table: at most one point
# here (55.9% at r = 0, 54.9% at r = 16).

# %% [markdown]
# ### Which patches were merged
#
# With `trace_source=True` the handle records, for every final token, which input patches it
# holds. Painting each group of patches with its mean colour shows the regions ToMe formed. First
# our trained digits ViT (r = 8: 65 → 33 tokens), then a real photograph through ViT-S/16 at 224 px
# with r = 16 (197 → 11 tokens). That ViT-S has **random weights** (no download here): its keys are
# random projections of the pixels, so its merges follow colour and texture, not meaning; a
# trained ViT's merges follow the object parts (see the paper's Fig. 4).

# %%
from skimage.segmentation import mark_boundaries

with torch.no_grad(), apply_token_merging(digit_vit, 8, trace_source=True) as handle:
    digit_vit(test_x[:6])
    digit_labels = patch_labels(handle.source, 1, (8, 8))  # (6, gh, gw)
fig, axes = plt.subplots(2, 6, figsize=(10, 3.6), dpi=80)
for i in range(6):
    image = test_x[i]
    painted = merged_image(image, digit_labels[i], patch_size=2)[0]  # (H, W), each region its mean
    painted = ((painted - image.min()) / (image.max() - image.min())).clamp(0, 1)  # to [0, 1] for display
    painted = painted.repeat_interleave(8, 0).repeat_interleave(8, 1)  # (128, 128): room for thin borders
    regions = digit_labels[i].repeat_interleave(16, 0).repeat_interleave(16, 1).numpy()  # (128, 128) region ids
    axes[0, i].imshow(image[0], cmap="gray")
    axes[1, i].imshow(mark_boundaries(painted.expand(3, -1, -1).permute(1, 2, 0).numpy(), regions, color=(1, 0, 0)))
    axes[0, i].set_title(f"label {test_y[i].item()}")
    axes[1, i].set_title(f"{int(digit_labels[i].max()) + 1} regions", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("Digits (16×16, 64 patches) and the regions left after 4 blocks of r = 8")
plt.show()

# %%
from skimage import data

photo = torch.tensor(data.chelsea(), dtype=torch.float32).permute(2, 0, 1) / 255  # (3, 300, 451)
photo = F.interpolate(photo[None], size=(224, 224), mode="bilinear", antialias=True)[0]  # (3, 224, 224)
mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
torch.manual_seed(0)
vit_s = create_model("vit_small_patch16_224").eval()
with torch.no_grad(), apply_token_merging(vit_s, 16, trace_source=True) as handle:
    vit_s(((photo - mean) / std)[None])
    photo_labels = patch_labels(handle.source, 1, (14, 14))[0]  # (14, 14)
    print("tokens per block:", handle.token_counts)
painted = merged_image(photo, photo_labels, patch_size=16).permute(1, 2, 0).clamp(0, 1).numpy()
regions = photo_labels.repeat_interleave(16, 0).repeat_interleave(16, 1).numpy()
fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=80)
axes[0].imshow(photo.permute(1, 2, 0).numpy())
axes[0].set_title("chelsea (skimage), 196 patches", fontsize=10)
axes[1].imshow(mark_boundaries(painted, regions, color=(1, 1, 0)))
axes[1].set_title(f"{int(photo_labels.max()) + 1} regions: ViT-S/16, random weights, r = 16", fontsize=10)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ### The speed-up on ViT-S/16
#
# The paper reports ViT-S/16 at about 1.6× the images/s for about 2 points of ImageNet accuracy on
# a V100. Throughput needs no training, so we measure ViT-S/16 at 224 px (random weights) with r = 16
# against r = 0, alternating the two in one run (quick mode: ViT-Ti, smaller batch). The same
# measurement is part of `python -m vit_lessons.efficient`.

# %%
if QUICK:
    tome = tome_speedup(create_model("vit_tiny_patch16_224"), r=16, batch_size=2, device=device, repeats=1, rounds=1)
else:
    tome = tome_speedup(vit_s, r=16, batch_size=8, device=device, repeats=2, rounds=2)
print(f"r=0: {tome['images_per_s_r0']:.2f} images/s, r=16: {tome['images_per_s_merged']:.2f} images/s, "
      f"ratio {tome['ratio']:.2f}x on {tome['hardware']}")
print("tokens per block:", tome["tokens"])

# %% [markdown]
# ## 4. Inference throughput: ViT against ResNet
#
# Images/s in inference (random weights, `no_grad`), for ViT-Ti/16 and ViT-S/16 against
# torchvision's ResNet-18 and ResNet-50 at 224 px; the CNNs run channels-last. On a CPU we also
# run bf16 under `torch.autocast`; without native bf16 instructions (AVX-512 BF16 or AMX) it is
# emulated and slower than fp32. The CPU that saved these outputs has both (`avx512_bf16` and
# `amx_bf16` in `/proc/cpuinfo`), and there bf16 ran faster than fp32 at batch 1. On a GPU the
# table adds fp16 (and bf16 from compute capability 8.0).
# The notebook uses batches 1 and 16 in fp32 and batch 1 in low precision (quick mode: batch 1,
# fp32, two models); the command line
# `python -m vit_lessons.efficient` runs batches 1 and 64 and saves the table as JSON
# (our run: `docs/benchmarks/efficient.md`).

# %%
if QUICK:
    table = inference_benchmark(["vit_tiny_patch16_224", "resnet18"], batch_sizes=(1,), dtypes=["fp32"], device=device, repeats=1)
else:
    table = inference_benchmark(batch_sizes=(1, 16), dtypes=["fp32"], device=device, repeats=2)
    from vit_lessons.settings import autocast_dtype

    low = ["bf16"] if device.type != "cuda" else ["fp16"] + (["bf16"] if autocast_dtype(device) == torch.bfloat16 else [])
    table += inference_benchmark(batch_sizes=(1,), dtypes=low, device=device, repeats=2)
print(f"{'model':22} {'params':>7} {'batch':>5} {'dtype':>5} {'images/s':>9}   ({table[0]['hardware']})")
for row in table:
    print(f"{row['model']:22} {row['params'] / 1e6:6.1f}M {row['batch_size']:>5} {row['dtype']:>5} {row['images_per_s']:9.1f}")

# %% [markdown]
# ## Summary
#
# - `F.scaled_dot_product_attention` dispatches to a fused kernel whose memory grows as N, not N²;
#   the "efficient attention" of common tutorials (attention plus a mask) saves nothing.
# - `torch.compile` costs a compile up front; it pays only when the compiled model is faster and runs
#   many times with the same shapes (here it was 1.07x faster and paid back after about 1,300 calls).
# - Token merging (`apply_token_merging(model, r)`) merges r tokens per block by bipartite soft
#   matching, with size-weighted averages and proportional attention; no retraining, removable
#   with `handle.remove()`. The tables above show how accuracy and images/s trade on this machine.
# - Throughput comparisons only mean something for one machine, one batch size and one dtype:
#   measure on yours (`python -m vit_lessons.efficient`), more than once: single measurements
#   scatter.
#
# Numbers in this notebook: full mode, on the hardware printed by the setup cell.
#
# **Next:** lesson 14 debugs ViTs: the bugs learners really meet and the checks that catch them.
