# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 09: attention maps, rollout and an interactive explorer
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/09_attention_maps.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will build:** the tools to look inside a trained Vision Transformer: the attention
# weights of every layer and head (captured correctly even though the model uses PyTorch's fused
# attention), the mean *attention distance* of each head (the ViT paper's Figure 7), **attention
# rollout** (Abnar & Zuidema 2020), **gradient rollout** for a chosen class (Chefer et al. 2021),
# and an interactive explorer to browse them all.
#
# **Prerequisites:** lessons 04-07 (attention, multi-head attention, the encoder block, the ViT);
# lesson 08 (training) helps but is not required.
#
# **Run time:** 11 s in full mode on an Intel Xeon CPU with 2 cores (Intel(R) Xeon(R) Processor),
# idle, the machine that saved these outputs; nothing is trained. Quick mode (`VIT_LESSONS_QUICK=1`)
# takes a few seconds. GPU: not measured yet.
#
# **Which numbers you see:** the saved outputs come from that full-mode run. The model is the
# course checkpoint `cifar10_vit`, a plain ViT trained on CIFAR-10 (its test accuracy is printed
# below); nothing is trained here, so quick mode shows the same model on fewer test images.

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %% [markdown]
# ## Set-up
#
# The explorer at the end uses ipywidgets. If it shows as text instead of controls, the versions of
# `ipywidgets` (in the kernel) and `jupyterlab_widgets` (in JupyterLab) do not match: the cell prints
# both. A static figure after the explorer shows the same views in any case; it is also all that the
# saved notebook (on GitHub, say) shows, because widget outputs are not saved.

# %%
import math

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from vit_lessons import create_model
from vit_lessons.settings import is_quick, pick_device, run_banner, seed_everything

seed_everything(0)
device = pick_device()
try:
    import jupyterlab_widgets

    lab_widgets = jupyterlab_widgets.__version__
except ImportError:
    lab_widgets = "not installed (fine on Colab and in classic Notebook)"
print(run_banner(device))
print(f"ipywidgets {ipywidgets.__version__}, jupyterlab_widgets {lab_widgets}")

# %% [markdown]
# ## A model to look at
#
# Attention maps of an untrained or barely trained model are noise, so we look at a model that
# works: the course checkpoint `cifar10_vit`, shipped with the package. It is lesson 07's plain ViT
# at width 192 (`vit_cifar_small_patch4_32`: a linear patch embedding of 4×4-pixel patches, so 64
# patch tokens plus the class token, learned positions, 6 pre-norm blocks of 3 heads, the class
# token's head; no convolution anywhere), trained by lesson 08's `python -m vit_lessons.train
# --config cifar10-vit` on the 50,000 CIFAR-10 training images. Its record says how it was made
# and how accurate it is; nothing is trained in this lesson. The images are CIFAR-10 test images,
# which the model never saw (`load_cifar10` downloads CIFAR-10 once if it is not on disk).

# %%
from vit_lessons.data import load_cifar10, normalize
from vit_lessons.train import load_course_checkpoint

model, info = load_course_checkpoint("cifar10_vit", return_info=True, device=device)
mean, std, class_names = info["mean"], info["std"], info["classes"]
print(f"cifar10_vit: {info['params']:,} parameters, {info['test_accuracy']:.1%} on the 10,000 test images "
      f"(flip TTA; {info['wall_seconds'] / 60:.0f} min of training on {info['hardware']})")

_, test_set = load_cifar10(per_class_train=1, per_class_test=10 if is_quick() else 100)
test_images = torch.from_numpy(test_set.images).float() / 255  # (B, 3, 32, 32) in [0, 1]
test_labels = torch.from_numpy(test_set.labels)


def model_input(images):
    """Display images (B, 3, 32, 32) in [0, 1] → the normalised input the model was trained on."""
    return normalize(images * 255, mean, std).to(device)


with torch.no_grad():
    accuracy = (model(model_input(test_images)).argmax(-1).cpu() == test_labels).float().mean().item()
print(f"accuracy on the {len(test_images):,} test images used here: {accuracy:.1%} (chance: 10%)")

# %% [markdown]
# ## Raw attention maps, captured correctly
#
# Each block computes, for each head, the weights A = softmax(Q Kᵀ / √d): row *i* says how much
# token *i* reads from every token. Our `MultiHeadSelfAttention` normally calls
# `F.scaled_dot_product_attention`, a fused kernel that never stores A, which is fast but leaves
# nothing to look at. This is a real trap: a forward hook on `attn_drop` (where the explicit path
# passes the weights) silently captures **nothing** on the fused path:

# %% tags=["nbval-check-output"]
picks = [int(np.flatnonzero(test_set.labels == c)[0]) for c in range(8)]  # one test image per class
images, image_labels = test_images[picks], test_labels[picks]  # (B, 3, 32, 32), (B,)
seen = []
hook = model.blocks[0].attn.attn_drop.register_forward_hook(lambda module, args, out: seen.append(args[0]))
with torch.no_grad():
    model(model_input(images))
hook.remove()
print(f"maps captured by a plain hook on the fused path: {len(seen)}")

# %% [markdown]
# `vit_lessons.interpret.attention_maps` switches every attention module to the explicit path
# for one call only, reads the weights where they enter `attn_drop`, and restores everything
# afterwards. It returns one (B, heads, N, N) tensor per layer:

# %% tags=["nbval-check-output"]
from vit_lessons.interpret import attention_maps

maps = [m.cpu() for m in attention_maps(model, model_input(images))]
print(f"{len(maps)} layers, each {tuple(maps[0].shape)} = (images, heads, query tokens, key tokens)")
print("every row sums to 1:", all(torch.allclose(m.sum(-1), torch.ones(())) for m in maps))
print("fast path back on:", all(block.attn.fused_attn for block in model.blocks))

# %% [markdown]
# Build the first layer's map yourself from its ingredients, the normalised tokens and the `qkv`
# projection, and check the captured one equals it:

# %% tags=["nbval-check-output"]
with torch.no_grad():
    tokens = model.embed(model_input(images))  # (B, N, D)
    q, k, v = model.blocks[0].attn.split_heads(model.blocks[0].norm1(tokens))  # (B, h, N, d) each
    by_hand = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1).cpu()  # (B, h, N, N)
print("by hand:", tuple(by_hand.shape))
torch.testing.assert_close(maps[0], by_hand, atol=1e-5, rtol=1e-4)
print("captured layer-1 map equals softmax(QKᵀ/√d): True")

# %% [markdown]
# ## What the maps mean, and what they do not
#
# - A map row is a *mixing weight*: how much of each token's **value** vector goes into the query
#   token's update at that layer. It is exact, not an approximation.
# - It is **not** an explanation of the prediction. Values have different sizes, the residual
#   stream carries most of the signal past every attention layer, the MLPs mix features, and
#   deeper layers attend to *tokens* that are already mixtures of many patches. Attention weights
#   can be changed a lot without changing the output (Jain & Wallace 2019).
# - Maps are **not class-specific**: the raw map and rollout look the same whichever class you
#   ask about. Only gradient-based methods (below) depend on the class.
# - Extra tokens shift indices: ViT has one prefix token (the class token), DeiT two (class and
#   distillation), register models more; patches start after them (`model.num_prefix_tokens`).
#
# ## Every head of a layer
#
# The class token's row, one panel per head, for the first and the last layer (bright = more
# weight). Heads of one layer attend differently: that is what several heads are for.

# %%
from vit_lessons.interpret import token_heatmap

grid, prefix = model.patch_embed.grid_size, model.num_prefix_tokens
index = 0
heads = maps[0].shape[1]
fig, axes = plt.subplots(2, heads + 1, figsize=(10, 2.8), dpi=80)
for row, layer in enumerate([0, len(maps) - 1]):
    axes[row, 0].imshow(images[index].permute(1, 2, 0))
    axes[row, 0].set_title(class_names[image_labels[index]], fontsize=8)
    axes[row, 0].set_ylabel(f"layer {layer + 1}")
    for head in range(heads):
        heat = token_heatmap(maps[layer][index, head, 0], grid, prefix)  # (rows, cols) in [0, 1]
        axes[row, head + 1].imshow(heat, cmap="inferno")
        axes[row, head + 1].set_title(f"head {head}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("class-token attention per head (each panel scaled to its own max)", fontsize=9)
plt.show()

# %% [markdown]
# ## Attention distance: how far each head looks
#
# The ViT paper's Figure 7 measures, for every head, the mean distance in pixels between a query
# patch and the patches it attends to, weighted by the attention. Early layers of a large
# pre-trained ViT mix very local heads with global ones; deeper layers are mostly global. Here, on
# 32×32 images of 4×4-pixel patches, the largest possible mean distance is a few tens of pixels.
# We compare the trained model with the same architecture untrained.

# %% tags=["nbval-check-output"]
from vit_lessons.interpret import attention_distance

batch = test_images[:32]
untrained = create_model(info["model_name"], **info["model_kwargs"]).to(device).eval()
distances = {
    "trained": attention_distance(attention_maps(model, model_input(batch)), grid, 4, prefix),
    "untrained": attention_distance(attention_maps(untrained, model_input(batch)), grid, 4, prefix),
}
print("mean distance per (layer, head):", tuple(distances["trained"].shape))

# %%
fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
for (name, values), marker, shift in zip(distances.items(), ["o", "x"], [-0.1, 0.1]):
    layers = np.arange(1, values.shape[0] + 1)
    for head in range(values.shape[1]):
        ax.scatter(layers + shift, values[:, head].cpu(), marker=marker, color="C0" if name == "trained" else "C1",
                   label=name if head == 0 else None, s=20)
ax.set_xlabel("layer")
ax.set_ylabel("mean attention distance (pixels)")
ax.set_title("each dot is one head (cf. ViT paper, Figure 7)")
ax.set_xticks(layers)
ax.legend()
plt.show()

# %% [markdown]
# Untrained heads all sit near 16.5 px, the mean distance of uniform attention over this 8×8 grid.
# Training spread them out (the printout below gives each layer's range): the second layer holds the
# most local heads, the later layers stay close to uniform, and no head looks only at its
# neighbourhood. The ViT paper's Figure 7 shows heads a few pixels wide in the first layers of
# models pre-trained on millions of images; a 6-layer model trained on 50,000 small images learns a
# weaker version of that locality, one more sign of how much data a ViT needs to learn what a
# convolution has built in.

# %%
for name, values in distances.items():
    ranges = ", ".join(f"L{layer}: {row.min():.1f}-{row.max():.1f}" for layer, row in enumerate(values.cpu(), start=1))
    print(f"{name:>9} heads, px: {ranges}")

# %% [markdown]
# ## Attention rollout: following the residual stream
#
# A token's output at layer *l* is its input plus the attention update, so a layer's effective
# mixing matrix is about ½·A + ½·I, not A alone (forgetting the identity is a published
# mistake). Abnar & Zuidema chain these through the layers, first layer first:
# R = Â_L ⋯ Â_2 Â_1 with Â = 0.5·mean_heads(A) + 0.5·I, rows renormalised. Build it, then check
# the package's `attention_rollout` agrees:

# %% tags=["nbval-check-output"]
from vit_lessons.interpret import attention_rollout

eye = torch.eye(maps[0].shape[-1])
rollout = eye.expand(len(images), -1, -1)  # (B, N, N)
for layer_map in maps:  # first layer first
    mixed = 0.5 * layer_map.mean(dim=1) + 0.5 * eye  # (B, N, N)
    mixed = mixed / mixed.sum(dim=-1, keepdim=True)
    rollout = mixed @ rollout  # the newer layer multiplies from the left
torch.testing.assert_close(rollout, attention_rollout(maps), atol=1e-6, rtol=1e-5)
print("rollout:", tuple(rollout.shape), "equals vit_lessons.interpret.attention_rollout: True")

# %% [markdown]
# Raw last-layer attention of the class token against rollout, on four test images. In the saved
# run the raw last-layer maps put their weight on a few patches, several of them on the background
# (the airplane's sky, the bird's grass); rollout, which accumulates all layers, spreads over more
# of the object (the airplane, the bird). Neither is a segmentation: both mix in background.

# %%
fig, axes = plt.subplots(3, 4, figsize=(8, 6), dpi=80)
for col in range(4):
    raw = token_heatmap(maps[-1][col, :, 0].mean(0), grid, prefix, image_size=(32, 32))
    rolled = token_heatmap(rollout[col, 0], grid, prefix, image_size=(32, 32))
    axes[0, col].imshow(images[col].permute(1, 2, 0))
    axes[0, col].set_title(f"label: {class_names[image_labels[col]]}", fontsize=8)
    for row, (heat, name) in enumerate([(raw, "raw, last layer"), (rolled, "rollout")], start=1):
        axes[row, col].imshow(images[col].permute(1, 2, 0))
        shown = axes[row, col].imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        axes[row, col].set_title(name, fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes[1:, :], shrink=0.8, label="relative weight (per map)")
plt.show()

# %% [markdown]
# ## Gradient rollout: which tokens matter for *this* class
#
# Rollout answers "where does information flow", for every class at once. Chefer et al. (2021)
# weight each head's map by the gradient of the chosen class score: Ā = mean over heads of
# (∂y_c/∂A ⊙ A)⁺ (only positive evidence), then accumulate R ← R + Ā·R from the first layer to the
# last. The class token's row of R is a relevance map *for class c*.
#
# When does asking about another class change the map? We take the test images on which the model
# hesitates between two classes (the second most probable has p ≥ 0.2), compute the map for each
# of the two, and measure how alike they are (the correlation of the two maps over the 64 patches).
# The figure shows the image where they differ most; the printout says how typical that is.

# %%
from vit_lessons.interpret import gradient_rollout


def class_relevance(image, target_class):
    """The class token's gradient-rollout row for one image (3, 32, 32) → (N,) on the CPU."""
    return gradient_rollout(model, model_input(image[None]), target_class=target_class)[0, 0].cpu()


with torch.no_grad():
    all_probs = model(model_input(test_images)).softmax(-1).cpu()  # (B, classes)
top_p, top_c = all_probs.topk(2, dim=-1)  # (B, 2) each
unsure = torch.nonzero(top_p[:, 1] >= 0.2).flatten().tolist()
alike = {}
for i in unsure:
    first, second = (class_relevance(test_images[i], c)[prefix:] for c in top_c[i].tolist())  # (64,) each
    alike[i] = torch.corrcoef(torch.stack([first, second]))[0, 1].item()
index = min(alike, key=alike.get)  # the image whose two maps are least alike
top2 = top_c[index].tolist()
relevance = {c: class_relevance(test_images[index], c) for c in top2}
print(f"{len(unsure)} of {len(test_images)} test images have a second class with p >= 0.2")
print(f"correlation of their two maps: median {np.median(list(alike.values())):.2f}, "
      f"lowest {alike[index]:.2f} (shown below)")
print("parameters left without .grad:", all(p.grad is None for p in model.parameters()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(7, 2.6), dpi=80)
axes[0].imshow(test_images[index].permute(1, 2, 0))
axes[0].set_title(f"label: {class_names[test_labels[index]]}", fontsize=8)
for ax, c in zip(axes[1:], top2):
    ax.imshow(test_images[index].permute(1, 2, 0))
    shown = ax.imshow(token_heatmap(relevance[c], grid, prefix, image_size=(32, 32)), cmap="inferno",
                      alpha=0.6, vmin=0, vmax=1)
    ax.set_title(f"for '{class_names[c]}' (p = {all_probs[index, c]:.2f})", fontsize=8)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("gradient rollout for the two most probable classes", fontsize=9)
fig.colorbar(shown, ax=axes, shrink=0.8, label="relative relevance")
plt.show()

# %% [markdown]
# In the saved run the two maps of most hesitant images are only weakly correlated (the median in
# the printout), so asking about the other class usually moves the relevance; in the image shown, a
# dog that the model takes for a deer or a bird, the two classes light up different parts.
#
# What these maps do **not** prove. A bright patch is one where the class score is sensitive to the
# attention weights, as Chefer et al.'s rule combines them; it is not shown that the model *needs*
# that patch. That would take an intervention: occlude or remove the patch and measure how the class
# probability falls (a deletion curve). Gradient maps also depend on the rule chosen (positive part,
# mean over heads, the identity term), and two maps that look different can come from a model that
# decides on the same evidence. Use them to form hypotheses about a model, then test those.

# %% [markdown]
# ## The explorer
#
# Running the next cell opens the explorer (the saved notebook shows no output for it; the static
# figure after it shows three of its views). Choose an image (three photographs from scikit-image,
# shrunk to 32×32, and CIFAR test images), a layer, a head or the mean over heads, a query token
# (0 = the class token; k = patch k, counted row by row, outlined in cyan), and the method: **raw**
# (that layer's map), **rollout** (layers 1 to the chosen one) or **gradient rollout** (the same, for
# the class you pick). The predicted classes are listed on the right. The forward pass is cached per
# image, so dragging a slider only redraws. Things to try: the class token's raw map in layer 1 vs
# layer 4; a patch query on the object vs the background; gradient rollout for the right and for a
# wrong class.

# %%
from skimage import data as samples

from vit_lessons.widgets import AttentionExplorer


def small(photo):
    """An (H, W, 3) uint8 photograph → (3, 32, 32) float in [0, 1], centre-cropped to a square."""
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    square = torch.from_numpy(photo[top : top + side, left : left + side]).permute(2, 0, 1).float() / 255
    return F.interpolate(square[None], size=(32, 32), mode="bilinear", antialias=True)[0].clamp(0, 1)


gallery = {"cat (chelsea)": small(samples.chelsea()), "coffee": small(samples.coffee()),
           "astronaut": small(samples.astronaut())}
gallery.update({f"test: {class_names[image_labels[i]]}": images[i] for i in range(len(images))})
explorer = AttentionExplorer(model, gallery, class_names=class_names, mean=mean, std=std)
explorer.widget

# %% [markdown]
# The saved notebook keeps no widget output, so on GitHub the explorer cell above shows nothing.
# Here are the same three views for three images, class token, last layer (gradient rollout for the
# predicted class); each title gives the model's prediction and its probability.

# %%
explorer.static_figure(["cat (chelsea)", f"test: {class_names[image_labels[3]]}", f"test: {class_names[image_labels[7]]}"])
plt.show()

# %% [markdown]
# ## Summary
#
# - Fused attention (SDPA) never forms the weights; capture them by switching to the explicit path
#   for one call (`attention_maps`), and check them against softmax(QKᵀ/√d) as we did.
# - Raw maps show one layer's mixing; **rollout** chains layers with the residual (½A + ½I);
#   **gradient rollout** makes the picture class-specific. None of them is a full explanation.
# - Attention distance summarises each head's reach, the ViT paper's Figure 7 in miniature.
# - The explorer (core ipywidgets, PNG frames, cached forward passes) runs anywhere Jupyter does.
#
# ## Exercises
#
# `ex.hint()` prints a hint, `ex.solution()` a reference solution.
#
# **1. Attention rollout.** Write `my_rollout(maps)`: `maps` is a list of (B, heads, N, N)
# attention tensors, one per layer, first layer first (as `attention_maps` returns). Return the
# (B, N, N) rollout of Abnar & Zuidema: for each layer Â = 0.5·mean_heads(A) + 0.5·I with each row
# renormalised to sum to 1, then R = Â_L ⋯ Â_2 Â_1 (the newer layer multiplies from the left).
# Do not skip the renormalisation: the grader also passes maps whose rows do not sum to 1, as
# when they are captured with attention dropout on. Any floating-point dtype is fine.

# %%
# EXERCISE 09.attention_rollout: my_rollout
def my_rollout(maps):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("09.attention_rollout")
ex.check(my_rollout)

# %% [markdown]
# **2. Mean attention distance.** Write
# `my_attention_distance(maps, grid_size, patch_size, num_prefix_tokens=1)` returning the (L, h)
# mean attention distance in pixels, as `attention_distance` does: drop the first
# `num_prefix_tokens` rows and columns of each map (prefix tokens have no place on the grid),
# renormalise each query's weights over the patch keys, place patch k (row-major over
# `grid_size = (rows, cols)`, which need not be square) at row k // cols, column k % cols, scaled
# by `patch_size` to pixels; sum weight × Euclidean distance over the keys, then average over the
# query patches and the images.

# %%
# EXERCISE 09.attention_distance: my_attention_distance
def my_attention_distance(maps, grid_size, patch_size, num_prefix_tokens=1):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
ex_distance = get_exercise("09.attention_distance")
ex_distance.check(my_attention_distance)

# %% [markdown]
# **3. Try this (not graded).** Run `attention_rollout(maps, head_fusion="max")` and
# `attention_rollout(maps, discard_ratio=0.9)` and redraw the rollout heatmaps above: which of the
# variants gives the most object-shaped maps on these images? And plot the attention distance of
# the untrained model against `patch_size`: why does it grow exactly in proportion?
#
# **Next:** [lesson 10](10_deit_distillation.ipynb) adds DeiT's distillation token, a second prefix token the
# tools above already handle.
