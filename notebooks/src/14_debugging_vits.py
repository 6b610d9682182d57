# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 14: debugging Vision Transformers
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/14_debugging_vits.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will do:** meet the bugs that learners really write in ViT code (a forgotten class
# token, the wrong patch order, post-norm, the wrong attention scale, shared heads, missing or stale
# position embeddings, a shared LayerNorm, NaN in fp16, unnormalised data, a learning rate without
# warm-up) and, for each, the symptom, **the check that catches it** and the fix. The checks are
# reusable, in `vit_lessons.debug`: shape printouts, parity with a reference model, overfitting one
# batch, per-layer gradient norms and activation statistics (hooks), and `torch.autograd.detect_anomaly`.
# Then you find a hidden bug yourself.
#
# **Prerequisites:** lessons 04–07 (attention, the encoder block, the full ViT); lesson 08 helps.
#
# **Run time:** 23 s in full mode on an Intel Xeon CPU with 2 cores (Intel(R) Xeon(R) Processor),
# idle, the machine that saved these outputs; 5 s of it trained the reference model (printed below).
# Quick mode (`VIT_LESSONS_QUICK=1`) takes a few seconds. GPU: not measured yet.
# Every bug is planted in the small ViT for sklearn's 8×8 digits, which trains in seconds on a CPU.

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %%
import copy
import inspect
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from vit_lessons import create_model
from vit_lessons.debug import (
    BUGS,
    activation_stats,
    first_divergence,
    gradient_norms,
    make_buggy_vit,
    overfit_one_batch,
    parity,
    shape_trace,
)
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
QUICK = is_quick()
print(run_banner(device))

# %% [markdown]
# ## A trained reference model
#
# Several bugs only show against trained weights, so we first train a correct small ViT on the
# digits: 8×8 grey images cut into 2×2 patches, 16 patch tokens plus the class token. The pixels are
# normalised with the training set's mean and standard deviation; remember that, it matters later.
# The run is short (quick mode: 3 epochs; full mode: 25), so the accuracy is modest.

# %%
digits = load_digits()
images_all = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16  # (1797, 1, 8, 8) in [0, 1]
labels_all = torch.tensor(digits.target)
order = torch.randperm(len(images_all), generator=torch.Generator().manual_seed(0))
train_x, train_y = images_all[order[:1400]], labels_all[order[:1400]]
test_x, test_y = images_all[order[1400:]], labels_all[order[1400:]]
MEAN, STD = train_x.mean().item(), train_x.std().item()
print(f"train {tuple(train_x.shape)}, test {tuple(test_x.shape)}, pixel mean {MEAN:.3f}, std {STD:.3f}")
CONFIG = dict(embed_dim=48, depth=3, num_heads=3)  # a smaller variant of vit_digits_patch2_8
digits_config = dict(img_size=8, patch_size=2, in_chans=1, num_classes=10, mlp_ratio=2.0, **CONFIG)


def new_model(**overrides):
    torch.manual_seed(0)
    return create_model("vit_digits_patch2_8", **{**CONFIG, **overrides})


# %% [markdown]
# One training function serves every experiment: AdamW, cosine decay, an optional linear warm-up,
# the per-step losses returned so that we can plot them.

# %%
def train(model, epochs, lr, warmup_steps=0, normalise=True, batch_size=64):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    total, step, losses = epochs * steps_per_epoch, 0, []
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(train_x)).split(batch_size):
            warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
            for group in optimizer.param_groups:
                group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / total))
            images = (train_x[index] - MEAN) / STD if normalise else train_x[index]
            loss = F.cross_entropy(model(images), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
    return losses


def accuracy(model, normalise=True):
    model.eval()
    with torch.no_grad():
        images = (test_x - MEAN) / STD if normalise else test_x
        return (model(images).argmax(1) == test_y).float().mean().item()


EPOCHS = 3 if QUICK else 25
start = time.perf_counter()
reference = new_model()
reference_losses = train(reference, EPOCHS, lr=3e-3, warmup_steps=20)
print(f"{EPOCHS} epochs in {time.perf_counter() - start:.0f} s; test accuracy {accuracy(reference):.1%}")

# %% [markdown]
# ## Check 1: shape printouts
#
# The cheapest check: run one batch and print every module's output shape. `shape_trace` does it
# with forward hooks. For the digits ViT: 16 patch tokens of width 48, then 17 tokens (class token
# added) through every block, then 10 logits.

# %% tags=["nbval-check-output"]
batch = (test_x[:4] - MEAN) / STD  # (B, C, H, W)
for name, kind, shape in shape_trace(reference, batch, max_depth=2):
    print(f"{name:16} {kind:16} {shape}")

# %% [markdown]
# ### Bug: the forgotten class token
#
# The buggy `embed` adds the position embedding (17 positions: class token + 16 patches) to the
# patch tokens without first prepending the class token:

# %%
print(inspect.getsource(type(make_buggy_vit("missing_class_token")).embed))

# %% [markdown]
# **Symptom:** an error from deep inside the addition, which says "16 vs 17" but not why.
# **Check:** the shape trace stops at the last module that worked: 16 tokens leave `patch_embed`,
# and the position embedding holds 17. **Fix:** `torch.cat([cls_token.expand(B, -1, -1), tokens], 1)`
# before adding positions, as `VisionTransformer.embed` does.

# %% tags=["nbval-check-output"]
buggy = make_buggy_vit("missing_class_token", **digits_config)
try:
    shape_trace(buggy, batch)
except RuntimeError as error:
    print("RuntimeError:", error)
    print("last shapes before the error:", error.trace[-1])
    print("position embedding:", tuple(buggy.pos_embed.shape))

# %% [markdown]
# ## Check 2: parity with a reference
#
# When a model runs but gives wrong numbers, compare it with one you trust: load the same weights
# into both, feed the same batch, compare outputs. `parity` does that (the state dict must load
# strictly, so names and shapes agree), and `first_divergence` hooks every module of both models
# and names the first one whose output differs. Every bug below keeps the correct parameter names
# and shapes, and `print(model)` looks exactly like a correct model's, as real bugs do.

# %% tags=["nbval-check-output"]
SILENT = ["mean_pool", "patch_order", "post_norm", "attention_scale", "shared_head_projection",
          "missing_position_embedding", "shared_layernorm"]
zoo = {bug: make_buggy_vit(bug, **digits_config) for bug in SILENT}
for bug, model in zoo.items():
    model.load_state_dict(reference.state_dict())
    where = first_divergence(model, reference, batch)
    print(f"{bug:28} same repr as a correct ViT: {repr(model) == repr(reference)};  first differs at: {where}")

# %% [markdown]
# One bug hides here: `patch_order` shows no difference at all. With one input channel the orders
# (row, column, channel) and (channel, row, column) are the same, so a grey-scale test cannot
# catch it; it needs RGB input (below). Test with the data you will really use.
#
# How wrong are they? Test accuracy with the reference's trained weights (none is retrained):

# %%
print(f"{'reference':28} {accuracy(reference):6.1%}")
for bug, model in zoo.items():
    print(f"{bug:28} {accuracy(model):6.1%}   max |logit difference| {parity(model, reference, batch):.3f}")

# %% [markdown]
# ### Bug: mean pooling where the weights expect the class token
#
# **Symptom:** the model runs, accuracy drops. **Check:** `first_divergence` says `head`: all
# tokens agree and only the pooled vector differs. **Fix:** pool the way the weights were trained
# (`global_pool="token"` reads `tokens[:, 0]`; `"avg"` goes with its own `fc_norm`, trained so).

# %%
print(inspect.getsource(type(zoo["mean_pool"]).pool))

# %% [markdown]
# ### Bug: patches flattened in the wrong order
#
# A linear patch embedding is a stride-P convolution only if each patch is flattened in the
# convolution weight's order, (channel, row, column). Flatten as (row, column, channel) and the
# same weights multiply the wrong pixels. **Check:** the linear version against `Conv2d` on
# random input, here with the package's `patchify`; **fix:** permute to `(B, gh, gw, C, P, P)`.

# %% tags=["nbval-check-output"]
from vit_lessons.patches import patchify

conv = torch.nn.Conv2d(3, 8, kernel_size=4, stride=4)
images = torch.randn(2, 3, 16, 16)
by_conv = conv(images).flatten(2).transpose(1, 2)  # (B, N, D)
right = F.linear(patchify(images, 4), conv.weight.flatten(1), conv.bias)  # (channel, row, column)
wrong = images.reshape(2, 3, 4, 4, 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 48)  # (row, column, channel)
print("right order matches the convolution:", torch.allclose(right, by_conv, atol=1e-5))
print("wrong order matches the convolution:", torch.allclose(F.linear(wrong, conv.weight.flatten(1), conv.bias), by_conv, atol=1e-5))

# %% [markdown]
# ### Bug: post-norm where pre-norm is meant
#
# A popular tutorial calls its post-norm block "the original ViT"; ViT is pre-norm (`z + MSA(LN(z))`).
# **Check:** parity says `blocks.0.attn` differs (it gets un-normalised input). A second check
# shows the design difference: **activation statistics** per block. In pre-norm the residual
# stream grows block after block; in post-norm every block's output is normalised.

# %%
print(inspect.getsource(type(zoo["post_norm"].blocks[0]).forward))


def block_stds(model):
    rows = activation_stats(model, batch, max_depth=2)
    return [row["std"] for row in rows if row["name"].startswith("blocks.")]


fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
ax.plot(block_stds(reference), "o-", label="pre-norm (correct)")
ax.plot(block_stds(zoo["post_norm"]), "s-", label="post-norm (bug)")
ax.set(xlabel="block", ylabel="std of block output", title="Activation statistics per block (trained weights)")
ax.set_xticks(range(len(block_stds(reference))))
ax.legend()
plt.show()

# %% [markdown]
# ### Bug: scaling by sqrt(embed_dim) instead of sqrt(head_dim)
#
# Multi-head attention divides each head's scores by sqrt(d) with d = D/h, the size of the vectors
# in the dot product. Dividing by sqrt(D) shrinks the scores by sqrt(h): attention comes out too
# flat. The output error is small (compare the max logit difference above), which is why this bug
# survives: only parity with a reference finds it.

# %%
print(inspect.getsource(type(zoo["attention_scale"].blocks[0].attn).forward))

# %% [markdown]
# ### Bug: heads that share one projection
#
# The einsum attention of a well-known tutorial splits the *input* into h slices and applies one
# small (d × d) projection to every slice: the heads share weights, and the layer has 3·d² instead
# of 3·D² weights. Our zoo version keeps the correct parameter shapes (so weights load) but uses
# only the first head's block. **Check:** parity, then the parameter count against a reference
# implementation (timm's ViT has 3·D² + 3·D in `qkv`).

# %%
print(inspect.getsource(type(zoo["shared_head_projection"].blocks[0].attn).split_heads))

# %% [markdown]
# ### Bug: no position embedding
#
# Without positions, attention sees a bag of patches: shuffle the patches and the class token's
# output does not change. That gives a check you can run on any model with no reference at all:
# **permute the patches of an image; the logits must change.**

# %% tags=["nbval-check-output"]
def shuffled_patches(images, patch_size, seed=0):
    B, C, H, W = images.shape
    grid = images.reshape(B, C, H // patch_size, patch_size, W // patch_size, patch_size)
    grid = grid.permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C, patch_size, patch_size)  # (B, N, C, P, P)
    grid = grid[:, torch.randperm(grid.shape[1], generator=torch.Generator().manual_seed(seed))]
    grid = grid.reshape(B, H // patch_size, W // patch_size, C, patch_size, patch_size)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


for name, model in [("reference", reference), ("missing_position_embedding", zoo["missing_position_embedding"])]:
    model.eval()
    with torch.no_grad():
        same = torch.allclose(model(batch), model(shuffled_patches(batch, 2)), atol=1e-5)
    print(f"{name:28} logits unchanged by shuffling the patches: {same}")

# %% [markdown]
# ### Bug: one LayerNorm module reused in every block
#
# `self.norm = nn.LayerNorm(dim)` created once and used in each block means one set of norm
# weights for all of them. The state dict still lists a norm per block (all the same tensors),
# so loading weights "works" and the last one silently wins. **Check:** count distinct modules
# and parameters against what the architecture should have.

# %% tags=["nbval-check-output"]
for name, model in [("reference", reference), ("shared_layernorm", zoo["shared_layernorm"])]:
    norms = [module for block in model.blocks for module in (block.norm1, block.norm2)]
    print(f"{name:18} distinct block norms: {len({id(n) for n in norms})} of {len(norms)}, "
          f"parameters: {sum(p.numel() for p in model.parameters()):,}")

# %% [markdown]
# ### Bug: a stale position embedding after a resolution change
#
# Fine-tuning at a higher resolution gives more patches, but a learned position embedding has one
# row per patch of the old grid. **Symptom:** a size-mismatch error (or, worse, a silent
# `pos_embed[:, :N]` "fix" that scrambles the positions). **Fix:** resample the embedding on the
# 2-D grid: `model.set_img_size(new_size)` (lesson 03's `resample_position_embedding`).

# %% tags=["nbval-check-output"]
stale = make_buggy_vit("stale_position_embedding", **digits_config)  # now expects 12×12 images
big_batch = F.interpolate(batch, size=12, mode="bilinear")
try:
    stale(big_batch)
except RuntimeError as error:
    print("RuntimeError:", error)
fixed = copy.deepcopy(reference)
fixed.set_img_size(12)
print("after set_img_size(12): pos_embed", tuple(fixed.pos_embed.shape), "logits", tuple(fixed(big_batch).shape))

# %% [markdown]
# ## Check 3: overfit one batch
#
# Before a long run, train on one small batch: a correct model memorises it and the loss goes to
# about zero within a hundred steps or so (0.04 after 80 for the correct ViT at lr 3e-3 below). If
# it cannot, something between input and loss is broken (a detached tensor, frozen weights, a label
# mix-up, a learning rate far off), and no amount of training will help. `overfit_one_batch`
# returns the per-step losses.

# %%
one_batch = ((train_x[:16] - MEAN) / STD, train_y[:16])
steps = 40 if QUICK else 80
curves = {
    "correct ViT, lr 3e-3": overfit_one_batch(new_model(), one_batch, steps=steps, lr=3e-3),
    "correct ViT, lr 1.0": overfit_one_batch(new_model(), one_batch, steps=steps, lr=1.0),
}
frozen = new_model()
frozen.blocks.requires_grad_(False)
frozen.patch_embed.requires_grad_(False)
curves["blocks frozen by mistake"] = overfit_one_batch(frozen, one_batch, steps=steps, lr=3e-3)
fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
for label, losses in curves.items():
    ax.plot(losses, label=f"{label} (last {losses[-1]:.2f})")
ax.set(xlabel="step", ylabel="loss", yscale="log", title="Overfitting one batch of 16 digits")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Data not normalised the way the weights expect
#
# Our reference was trained on pixels normalised with mean and std. Pretrained ImageNet weights
# expect their own mean and std (and timm's CLIP or DINO weights others again). Feeding
# [0, 1] pixels to weights that expect normalised ones gives no error, only a lower accuracy.
# **Check:** activation statistics of the input and the first layer, against the training run's.

# %%
print(f"accuracy with normalised input: {accuracy(reference):.1%}; with raw [0, 1] pixels: "
      f"{accuracy(reference, normalise=False):.1%}")
for label, images in [("normalised", batch), ("raw [0, 1]", test_x[:4])]:
    stats = activation_stats(reference, images)[0]
    print(f"{label:11} input mean {images.mean():+.2f} std {images.std():.2f} -> "
          f"{stats['name']} mean {stats['mean']:+.2f} std {stats['std']:.2f}")

# %% [markdown]
# ## Learning rate too high without warm-up
#
# Adam's first steps are large (its second-moment estimate starts from nothing), and a
# Transformer's attention logits can blow up before the model settles. A linear warm-up of the
# learning rate avoids that. Same model, same high learning rate, with and without warm-up:

# %%
EPOCHS_LR = 2 if QUICK else 8
high = {}
for warmup in (0, 60):
    model = new_model()
    losses = train(model, EPOCHS_LR, lr=3e-2, warmup_steps=warmup)
    high[warmup] = (losses, accuracy(model), model)
fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
for warmup, (losses, acc, _) in high.items():
    ax.plot(losses, label=f"lr 3e-2, warm-up {warmup} steps (test accuracy {acc:.0%})")
ax.plot(reference_losses[: len(losses)], label="lr 3e-3, warm-up 20 (the reference)", alpha=0.6)
ax.set(xlabel="step", ylabel="training loss", title="A high learning rate with and without warm-up")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Read the curves: at the high rate, the run without warm-up jumps in its first steps, before Adam's
# statistics have settled; warm-up removes that jump. After about 30 steps both high-rate runs fall
# behind the reference and end at a loss of about 1.3 to 1.4, against its 0.7: warm-up is no cure
# for a rate that is simply too high. The first thing to try on a loss that spikes or stalls is a
# lower rate, then a warm-up.

# %% [markdown]
# ### Check 4: gradient norms per layer
#
# `gradient_norms` runs one forward/backward pass and lists every parameter's gradient norm (the
# model's `.grad` is left alone). Plotted per layer at initialisation it shows how unevenly the
# layers are pushed: with a high learning rate the layers with the largest gradients are the
# first to move too far, and a layer whose gradient is zero is not connected to the loss.

# %%
rows = [row for row in gradient_norms(new_model(), one_batch) if row["name"].endswith("weight")]
fig, ax = plt.subplots(figsize=(9, 3.5), dpi=80)
ax.bar(range(len(rows)), [row["grad_norm"] for row in rows])
ax.set_xticks(range(len(rows)), [row["name"].removesuffix(".weight") for row in rows], rotation=90, fontsize=7)
ax.set(yscale="log", ylabel="gradient norm", title="Gradient norm of each weight at initialisation")
plt.tight_layout()
plt.show()
largest, smallest = max(rows, key=lambda r: r["grad_norm"]), min(rows, key=lambda r: r["grad_norm"])
print(f"largest: {largest['name']} {largest['grad_norm']:.2e}; smallest: {smallest['name']} {smallest['grad_norm']:.2e}")

# %% [markdown]
# ## NaN under fp16 without a GradScaler
#
# On a GPU, mixed precision runs most ops in float16, whose range is tiny next to float32's:

# %% tags=["nbval-check-output"]
for dtype in (torch.float16, torch.bfloat16, torch.float32):
    info = torch.finfo(dtype)
    print(f"{str(dtype):15} largest {info.max:.4g}, smallest normal {info.tiny:.4g}")
print("float16 of [1e-8, 1e-5, 7e4]:", torch.tensor([1e-8, 1e-5, 7e4]).half().tolist())
print("softmax of fp16 scores [7e4, 1]:", torch.tensor([7e4, 1.0]).half().float().softmax(0).tolist())

# %% [markdown]
# Two failures follow. **Underflow:** small gradients round to zero in fp16, so weights stop
# learning. **Overflow:** a value above 65,504 becomes `inf`, and `inf - inf` in the softmax gives
# NaN, which then spreads through every later step. PyTorch's fix for underflow is loss scaling:
# `torch.amp.GradScaler` multiplies the loss by a large factor (2¹⁶ at first) before `backward`,
# divides the gradients by it before the step, and skips steps whose gradients hold inf/NaN while
# lowering the factor ([PyTorch AMP docs, "Gradient Scaling"](https://pytorch.org/docs/stable/amp.html#gradient-scaling)).
# This machine has no GPU, so we do not show a GPU run; we measure the mechanism on the CPU,
# where float16 tensors work too: the gradients of our trained model in fp32, in fp16, and in fp16
# with the loss scaled by 2¹⁶. A small, shallow model like ours loses few gradients; the share
# grows with depth and with smaller losses late in training, which is where fp16 runs go wrong.

# %%
def flat_grads(model, images, labels, scale=1.0):
    loss = F.cross_entropy(model(images).float(), labels) * scale
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([g.float().flatten() for g in grads]) / scale


train_batch = ((train_x[:64] - MEAN) / STD, train_y[:64])
g32 = flat_grads(reference.eval(), *train_batch)
half = copy.deepcopy(reference).half()
g16 = flat_grads(half, train_batch[0].half(), train_batch[1])
g16_scaled = flat_grads(half, train_batch[0].half(), train_batch[1], scale=2.0**16)
for label, grads in [("fp16", g16), ("fp16, loss x 2^16", g16_scaled)]:
    lost = ((grads == 0) & (g32 != 0)).float().mean().item()
    print(f"{label:18} gradient entries that underflowed to 0: {lost:.2%}   non-finite: {(~grads.isfinite()).sum().item()}")
tiny = (g32.abs() < torch.finfo(torch.float16).tiny).float().mean().item()
print(f"fp32 gradient entries below fp16's smallest normal number (precision lost in fp16): {tiny:.1%}")

# %% [markdown]
# With bf16 (A100, L4, H100 and newer) the range is float32's, so no scaler is needed; the T4 of
# free Colab has no bf16, so it needs fp16 **and** a GradScaler (`vit_lessons.settings.autocast_dtype`
# picks for you).
#
# ## Check 5: `torch.autograd.detect_anomaly`
#
# When a NaN appears, the question is *where*. Under `detect_anomaly`, autograd checks every
# backward function's output and raises at the first NaN, naming the op. Here a hand-written
# cross-entropy, `-log(softmax(logits))`, meets an over-confident model: a probability rounds to
# exactly 0, its log is `-inf`, and the backward pass produces NaN: the infinite gradient of
# log(0) meets the zero probability in the softmax's backward (inf · 0 = NaN), so the op named is
# `SoftmaxBackward0`, the step right after the real culprit. PyTorch also issues two warnings: a
# notice that anomaly mode is on, and one whose traceback ends with the forward line that created
# that op; we print the first line of each.

# %%
def handwritten_cross_entropy(logits, labels):
    probs = logits.softmax(dim=-1)
    return -probs[torch.arange(len(labels)), labels].log().mean()


logits = reference(batch) * 1000  # over-confident: some probabilities round to exactly 0
wrong_labels = (test_y[:4] + 1) % 10
import warnings

with warnings.catch_warnings(record=True) as caught, torch.autograd.detect_anomaly(check_nan=True):
    warnings.simplefilter("always")
    try:
        handwritten_cross_entropy(logits, wrong_labels).backward()
    except RuntimeError as error:
        print("RuntimeError:", str(error).splitlines()[0])
for warning in caught:  # the anomaly-mode notice, then the op and the forward traceback that created it
    print("warning:", str(warning.message).splitlines()[0])

# %% [markdown]
# The fix is `F.cross_entropy(logits, labels)`, which computes log-softmax directly (the log of a
# sum of exponentials, shifted by the maximum) and never takes the log of 0:

# %%
print("F.cross_entropy:", F.cross_entropy(logits, wrong_labels).item())

# %% [markdown]
# ## Exercise: find the bug
#
# `ex.mystery_model()` is a ViT (the 32-px CIFAR configuration, random weights) with **one** bug from
# the zoo, and `ex.reference_model()` a correct one with the same random weights. `print` shows
# nothing unusual. Use the checks of this lesson to find which bug it is, then make
# `find_the_bug()` return its name, one of `ex.bug_names()`. `ex.hint()` helps; `ex.solution()`
# gives the answer.

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("14.find_the_bug")
mystery, reference_32 = ex.mystery_model(), ex.reference_model()
print(ex.bug_names())
print("same repr:", repr(mystery) == repr(reference_32))

# %%
# EXERCISE 14.find_the_bug: find_the_bug
def find_the_bug():
    """Return the name of the bug in `mystery`, e.g. "post_norm"."""
    raise NotImplementedError  # investigate `mystery` with the checks above, then return the name

# %% tags=["nbval-check-output"]
ex.check(find_the_bug)

# %% [markdown]
# ## Summary
#
# | Bug | Symptom | Check that catches it |
# |---|---|---|
# | class token forgotten | shape error "16 vs 17" | shape printout |
# | mean pool on class-token weights | lower accuracy | parity: differs at `head` |
# | patch order ≠ conv weight layout | lower accuracy | linear vs `Conv2d` on random input |
# | post-norm for pre-norm | lower accuracy, different training | parity; activation statistics per block |
# | scale by sqrt(D), not sqrt(d) | small logit error, flat attention | parity with a reference |
# | heads share a projection | lower accuracy, too few parameters | parity; parameter count |
# | no position embedding | shuffled patches give the same logits | permutation test |
# | one LayerNorm reused | too few parameters, last weights win | count distinct modules |
# | stale position embedding | size-mismatch error | shape printout; fix with `set_img_size` |
# | fp16 without GradScaler | gradients vanish, inf → NaN | fp16 range, gradient counts, `detect_anomaly` |
# | data not normalised as trained | lower accuracy, shifted activations | activation statistics |
# | lr too high without warm-up | loss spikes, stalls | training curves; gradient norms per layer |
#
# The quick-mode numbers differ from these (fewer epochs); the saved outputs are from a full-mode run
# on the CPU named at the top.
#
# **Next:** you have built, trained, explained and debugged Vision Transformers. If you skipped it,
# lesson 13 makes them fast: fused attention, `torch.compile` and token merging.
