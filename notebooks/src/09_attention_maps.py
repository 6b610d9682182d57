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
# **Run time:** the full notebook took 58 s on an Intel Xeon CPU with 2 cores (Intel(R) Xeon(R)
# Processor), idle, the machine that saved these outputs; 53 s of it was training the model (printed
# below). Quick mode (`VIT_LESSONS_QUICK=1`) takes a few seconds. GPU: not measured yet.
#
# **Which numbers you see:** the saved outputs come from that full-mode run. The model is a small ViT
# trained in this notebook (42.0% test accuracy in the saved run), so its maps are those of a weak
# classifier: the point is the method, which works the same on ViT-B.

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
import time

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
# Attention maps of an untrained model are noise, so we need a trained one. If the course's
# checkpoint from lesson 08 is installed we use it; otherwise we train the lesson-07 CIFAR-10 ViT
# (`vit_cifar_patch4_32`: 4×4-pixel patches, so 64 patch tokens plus the class token, 4 layers of
# 8 heads) on 5,000 CIFAR-10 images for about a minute (53 s in the saved run). Without CIFAR-10 on
# disk (see lesson 08 for how to get it) the notebook falls back to the offline 8×8 digits, scaled up
# to 32×32 colour images so that every shape below stays the same.

# %%
from vit_lessons.data import DownloadError, load_cifar10, load_digits, normalize

per_class_train, per_class_test = (20, 10) if is_quick() else (500, 50)
try:
    train_set, test_set = load_cifar10(per_class_train=per_class_train, per_class_test=per_class_test)
    dataset_name = "CIFAR-10"
except (FileNotFoundError, DownloadError) as error:  # offline without the files, or a failed download
    print(f"CIFAR-10 is not available, so this lesson falls back to the 8x8 digits: {str(error).splitlines()[0]}")
    train_set, test_set = load_digits()
    dataset_name = "digits (8x8, shown at 32x32)"


def as_rgb32(images_uint8):
    """uint8 (B, C, h, w) → float (B, 3, 32, 32) in [0, 1] (digits are upscaled and coloured grey)."""
    images = torch.from_numpy(images_uint8).float() / 255
    if images.shape[-1] != 32:
        images = F.interpolate(images, size=(32, 32), mode="nearest")
    return images.expand(-1, 3, -1, -1).contiguous()


train_images, test_images = as_rgb32(train_set.images), as_rgb32(test_set.images)  # (B, 3, 32, 32) in [0, 1]
train_labels, test_labels = torch.from_numpy(train_set.labels), torch.from_numpy(test_set.labels)
mean = train_images.mean(dim=(0, 2, 3)).tolist()
std = train_images.std(dim=(0, 2, 3)).tolist()
class_names = list(train_set.classes)
print(f"{dataset_name}: {len(train_images)} training and {len(test_images)} test images")


# %% [markdown]
# The training loop is lesson 08's recipe in miniature: AdamW, a cosine schedule, label smoothing,
# random horizontal flips.

# %%
def train_small_vit(epochs, batch_size=64, lr=1e-3):
    seed_everything(0)
    model = create_model("vit_cifar_patch4_32", num_classes=len(class_names)).to(device)
    inputs = normalize(train_images * 255, mean, std).to(device)
    labels = train_labels.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(inputs) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for epoch in range(epochs):
        for batch in torch.randperm(len(inputs), device=device).split(batch_size):
            images = inputs[batch]
            flip = torch.rand(len(batch), device=device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            loss = F.cross_entropy(model(images), labels[batch], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


# %%
model = None
try:
    from vit_lessons.train import load_course_checkpoint

    candidate, info = load_course_checkpoint("cifar10_vit", return_info=True)
    if dataset_name == "CIFAR-10" and getattr(candidate, "global_pool", "token") == "token":
        model, mean, std = candidate.to(device), list(info["mean"]), list(info["std"])
        print("Using the course checkpoint from lesson 08.")
except (ImportError, ValueError) as error:
    print(f"No course checkpoint ({error}).")
if model is None:
    epochs = 1 if is_quick() else 6
    start = time.perf_counter()
    model = train_small_vit(epochs)
    print(f"Trained vit_cifar_patch4_32 here for {epochs} epochs on {len(train_images)} images "
          f"in {time.perf_counter() - start:.0f} s ({device}).")


def model_input(images):
    """Display images (B, 3, 32, 32) in [0, 1] → the normalised input the model was trained on."""
    return normalize(images * 255, mean, std).to(device)


with torch.no_grad():
    accuracy = (model(model_input(test_images)).argmax(-1).cpu() == test_labels).float().mean().item()
print(f"test accuracy on {len(test_images)} held-out images: {accuracy:.1%} (chance: 10%)")

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
untrained = create_model("vit_cifar_patch4_32", num_classes=len(class_names)).to(device).eval()
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
# In the saved run training spread the heads out, from about 15.5 px (more local, mostly layer 3)
# to about 17.1 px (more global, layer 4). The effect is small: a 4-layer model trained for under a
# minute on 5,000 images is far from the ViT paper's pre-trained models, whose first layers already
# hold heads that look only a few pixels away. Rerun this cell with the lesson-08 checkpoint to compare.
#
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
# Raw last-layer attention of the class token against rollout, on four test images. Raw maps of
# one layer are often spotty; rollout accumulates all layers and can spread the weight more widely.
# In the saved run the difference is modest: both kinds of map mostly show a few bright patches, and
# only the automobile's rollout spreads over a larger part of the object.

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
# last. Here are the two most probable classes for one test image, a cat that the model ranks 'dog'
# (p = 0.32) just above 'cat' (p = 0.30), as the titles show. In the saved run the two maps are
# similar: both mark a band across the middle of the image and a patch at the lower left, and they
# differ mainly in which patches of that band are brightest. Raw maps and rollout could not differ
# between classes at all. A difference this small does not show that the model uses different
# evidence for the two classes; try other images and classes in the explorer.

# %% tags=["nbval-check-output"]
from vit_lessons.interpret import gradient_rollout

index = 3
with torch.no_grad():
    probs = model(model_input(images[index : index + 1])).softmax(-1)[0].cpu()
top2 = probs.topk(2).indices.tolist()
relevance = {c: gradient_rollout(model, model_input(images[index : index + 1]), target_class=c)[0].cpu() for c in top2}
print("relevance per class:", tuple(relevance[top2[0]].shape))
print("parameters left without .grad:", all(p.grad is None for p in model.parameters()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(7, 2.6), dpi=80)
axes[0].imshow(images[index].permute(1, 2, 0))
axes[0].set_title(f"label: {class_names[image_labels[index]]}", fontsize=8)
for ax, c in zip(axes[1:], top2):
    ax.imshow(images[index].permute(1, 2, 0))
    shown = ax.imshow(token_heatmap(relevance[c][0], grid, prefix, image_size=(32, 32)), cmap="inferno",
                      alpha=0.6, vmin=0, vmax=1)
    ax.set_title(f"for '{class_names[c]}' (p = {probs[c]:.2f})", fontsize=8)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes, shrink=0.8, label="relative relevance")
plt.show()

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
# predicted class). The titles give the model's prediction: this weak model gets all three wrong.

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
# **Next:** [lesson 10](10_deit_distillation.ipynb) adds DeiT's distillation token, a second prefix token the
# tools above already handle.
