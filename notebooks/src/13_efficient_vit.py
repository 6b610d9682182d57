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
# **Run time:** 181 s in full mode on an Intel Xeon CPU with 2 cores (Intel(R) Xeon(R) Processor),
# idle, the machine that saved these outputs; most of it is token merging on the trained
# `cifar10_vit` (an accuracy pass over the 10,000 CIFAR-10 test images and five timing rounds for
# each r), and `torch.compile` took 1.4 s because Inductor's on-disk cache held the kernels from an
# earlier run (a first compile on a machine takes far longer). Quick mode (`VIT_LESSONS_QUICK=1`)
# skips `torch.compile`, uses 100 test images and benchmarks less: under a minute. GPU: not measured
# yet. Every time and speed below was measured by the run that saved this notebook, on the hardware
# printed by the setup cell; yours will
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
# `break_even_calls` is how many calls the compile time takes to pay back at the measured speed-up
# (None when the compiled model is not faster). The compile time also depends on Inductor's on-disk cache: the
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
# ToMe needs no retraining, but accuracy only means something on a trained model: the course
# checkpoint `cifar10_vit` (lesson 07's plain ViT at width 192: 64 patches of 4×4 pixels + the class
# token, 6 blocks; trained by lesson 08's `--config cifar10-vit`), on the CIFAR-10 test split (all
# 10,000 images in full mode, 100 in quick mode; `load_cifar10` downloads CIFAR-10 once if needed).

# %%
from vit_lessons.data import DeviceLoader, load_cifar10
from vit_lessons.train import evaluate, load_course_checkpoint

cifar_vit, info = load_course_checkpoint("cifar10_vit", return_info=True, device=device)
_, test_set = load_cifar10(per_class_train=1, per_class_test=10 if QUICK else None)
test_loader = DeviceLoader(test_set, 500, train=False, device=device)
print(f"cifar10_vit: {info['params']:,} parameters, {len(test_set):,} test images")

# %% [markdown]
# Accuracy and speed for several r, applied to the same trained weights. Accuracy is measured on
# every test image (without the flip test-time augmentation of the checkpoint's record, so r = 0
# reads a little lower). Speed is `tome_speedup`: images/s on batches of 256, merged and unmerged
# alternated over several rounds so that a change in background load hits both; the table gives
# the median ratio and its range over the rounds. The r = 0 row times the unmerged model against
# itself: its spread is the measurement's own noise, and the other rows should be read against it.

# %%
results = []
for r in (0, 4, 8) if QUICK else (0, 2, 4, 6, 8, 10):
    with apply_token_merging(cifar_vit, r) as handle:
        _, accuracy = evaluate(cifar_vit, test_loader)
        cifar_vit(torch.zeros(1, 3, 32, 32, device=device))
        tokens_out = handle.token_counts[-1]
    speed = tome_speedup(cifar_vit, r, batch_size=16 if QUICK else 256, img_size=32, device=device,
                         repeats=1 if QUICK else 3, rounds=1 if QUICK else 5)
    results.append((r, accuracy, speed, tokens_out))
print(f"{'r':>3} {'accuracy':>9} {'speed-up (min-max)':>19} {'tokens out':>11}")
for r, accuracy, speed, tokens_out in results:
    spread = f"{speed['ratio']:.2f}x ({min(speed['ratios']):.2f}-{max(speed['ratios']):.2f})"
    print(f"{r:>3} {accuracy:9.2%} {spread:>19} {tokens_out:>11}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
ratios = [speed["ratio"] for _, _, speed, _ in results]
errors = [[s["ratio"] - min(s["ratios"]) for _, _, s, _ in results], [max(s["ratios"]) - s["ratio"] for _, _, s, _ in results]]
ax.errorbar(ratios, [a * 100 for _, a, _, _ in results], xerr=errors, fmt="o-", capsize=3)
for r, accuracy, speed, _ in results:
    ax.annotate(f"r={r}", (speed["ratio"], accuracy * 100), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set(xlabel="speed-up over the unmerged model (images/s ratio; bars: min-max over rounds)",
       ylabel="test accuracy (%)", title="Token merging on the trained cifar10_vit (cf. ToMe, Fig. 1)")
plt.show()

# %% [markdown]
# Read the table against its r = 0 row: the unmerged model timed against itself, so its range is the
# timing noise. Merging a few tokens per block (small r) saves less than the matching costs at this
# model size; from r = 6 on the merged model is faster than that noise, and accuracy falls slowly,
# by about a point at the largest r, where only 8 tokens leave the last block. That is the shape of
# ToMe's Figure 1 (accuracy against throughput), at small scale.
#
# ### Which patches were merged
#
# With `trace_source=True` the handle records, for every final token, which input patches it
# holds. Painting each group of patches with its mean colour shows the regions ToMe formed in the
# trained model, here with r = 8 (65 → 17 tokens after 6 blocks) on six test images. In the saved
# run the large merged regions are background (sky, ground, table), while the object keeps more,
# smaller regions: tokens whose keys are alike are merged first.

# %%
from skimage.segmentation import mark_boundaries

shown_images = torch.from_numpy(test_set.images[:: max(1, len(test_set) // 6)][:6]).float() / 255  # (6, 3, 32, 32)
with torch.no_grad(), apply_token_merging(cifar_vit, 8, trace_source=True) as handle:
    cifar_vit(((shown_images - torch.tensor(info["mean"])[:, None, None]) / torch.tensor(info["std"])[:, None, None]).to(device))
    region_labels = patch_labels(handle.source, 1, (8, 8)).cpu()  # (6, 8, 8)
fig, axes = plt.subplots(2, 6, figsize=(10, 3.8), dpi=80)
for i, image in enumerate(shown_images):
    painted = merged_image(image, region_labels[i], patch_size=4).clamp(0, 1)  # (3, 32, 32), each region its mean
    painted = painted.repeat_interleave(4, 1).repeat_interleave(4, 2)  # (3, 128, 128): room for thin borders
    regions = region_labels[i].repeat_interleave(16, 0).repeat_interleave(16, 1).numpy()  # (128, 128) region ids
    axes[0, i].imshow(image.permute(1, 2, 0).numpy())
    axes[1, i].imshow(mark_boundaries(painted.permute(1, 2, 0).numpy(), regions, color=(1, 1, 0)))
    axes[0, i].set_title(info["classes"][test_set.labels[:: max(1, len(test_set) // 6)][i]], fontsize=9)
    axes[1, i].set_title(f"{int(region_labels[i].max()) + 1} regions", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("CIFAR-10 test images (64 patches) and the regions left after 6 blocks of r = 8")
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
    torch.manual_seed(0)
    tome = tome_speedup(create_model("vit_small_patch16_224"), r=16, batch_size=8, device=device, repeats=2, rounds=3)
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
#   many times with the same shapes (the printout in section 2 gives this run's speed-up and break-even).
# - Token merging (`apply_token_merging(model, r)`) merges r tokens per block by bipartite soft
#   matching, with size-weighted averages and proportional attention; no retraining, removable
#   with `handle.remove()`. The tables above show how accuracy and images/s trade on this machine.
# - Throughput comparisons only mean something for one machine, one batch size and one dtype:
#   measure on yours (`python -m vit_lessons.efficient`), more than once: single measurements
#   scatter.
#
# Numbers in this notebook: full mode, on the hardware printed by the setup cell.
#
# ## Exercises
#
# `ex.hint()` prints a hint, `ex.solution()` a reference solution.
#
# **1. Bipartite soft matching.** Write `my_bipartite_matching(metric, r)`, the heart of ToMe.
# `metric` (B, n, c) holds one feature vector per token (the caller has already left the class
# token out, so use all n tokens). Split the tokens alternately into A (positions 0, 2, 4, …) and
# B (positions 1, 3, 5, …); link every A token to its most similar B token by **cosine**
# similarity; keep the r links with the highest similarity (r is at most the size of A). Return a
# pair `(merged_a, into_b)` of (B, r) integer tensors: `merged_a[b, i]` is the position *within A*
# of a merged token (A's token j is token 2j of the sequence) and `into_b[b, i]` the position
# *within B* of its partner (B's token j is token 2j + 1). The r pairs may come in any order. These
# are `plan.merged_a` and `plan.into_b` of `bipartite_soft_matching(metric, r)`; on the toy example
# above you should get `[[1]]` and `[[1]]`.

# %%
# EXERCISE 13.bipartite_matching: my_bipartite_matching
def my_bipartite_matching(metric, r):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("13.bipartite_matching")
ex.check(my_bipartite_matching)

# %% [markdown]
# **2. Try this (not graded).** Run your matching on the toy `metric` above with r = 2, then merge
# the toy tokens with `merge_weighted(bipartite_soft_matching(metric, 2), tokens, size)`: which
# pairs merge, and what are the new sizes? Then scale the 4th feature vector by 10: does your
# matching change? Would it with the dot product instead of cosine similarity?
#
# **Next:** lesson 14 debugs ViTs: the bugs learners really meet and the checks that catch them.
