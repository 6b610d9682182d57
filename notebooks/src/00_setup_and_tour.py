# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 00: set-up and a tour of the course
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/vit-lessons/vit-lessons/blob/main/notebooks/00_setup_and_tour.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/vit-lessons/vit-lessons/main?urlpath=lab/tree/notebooks)
#
# **What you will do:** check that your environment works, see which hardware the lessons will
# use, and take a short tour of `vit_lessons`, the small package that holds the finished code of
# every lesson.
#
# **Prerequisites:** Python and a little PyTorch (tensors, `nn.Module`, a training loop).
#
# **Run time:** under 10 s on a laptop CPU; the same on a GPU.
#
# ## How the course works
#
# Each lesson builds one component of a Vision Transformer (ViT) in small steps, printing the
# shape of every tensor on the way, then checks that what you built equals the `vit_lessons`
# version. The package is what later lessons import, so by the end you have read all of it.
#
# | Lesson | Builds |
# |---|---|
# | 00 | set-up, this tour |
# | 01 | images as patches |
# | 02 | patch embedding and the class token |
# | 03 | position embeddings: sinusoidal vs learned |
# | 04 | scaled dot-product self-attention |
# | 05 | multi-head attention |
# | 06 | the encoder block: LayerNorm, MLP, residuals, pre-norm |
# | 07 | the full Vision Transformer |
# | 08 | training on CIFAR-10 (CPU, CUDA, AMP) |
# | 09 | attention maps, rollout, an interactive explorer |
# | 10 | DeiT: distillation |
# | 11 | the Swin Transformer |
# | 12 | pretrained weights and transfer learning |
# | 13 | efficient ViTs |
# | 14 | debugging ViTs |
#
# ## Why a Vision Transformer?
#
# A convolution builds two assumptions into the network: **locality** (a pixel is explained first by
# its neighbours) and **translation equivariance** (the same filter slides over the whole image).
# These *inductive biases* are right for images, and they let a CNN learn from little data. A ViT
# keeps almost none of them. After cutting the image into patches, every token may attend to every
# other from the first layer on, and where a patch sits must be learned through the position
# embeddings (lesson 03 shows a trained model learning the 2-D grid). Fewer built-in assumptions
# are a cost and a freedom, not a pure advantage:
#
# - **With little data the cost shows.** The ViT paper (Dosovitskiy et al. 2021, Sections 1 and
#   4.3) reports that ViTs trained on ImageNet alone (1.3M images) without strong regularisation
#   land a few points below ResNets of comparable size, and overtake them when pre-trained on 14M
#   to 300M images (ImageNet-21k, JFT-300M). timm's evaluation of released weights
#   (`results/results-imagenet.csv` in huggingface/pytorch-image-models, commit aa4b585) shows the
#   same effect with architecture and recipe held fixed: ViT-B/16 trained with the AugReg recipe
#   on ImageNet-1k alone reaches 79.2% top-1, and 84.5% when pre-trained on ImageNet-21k first;
#   ViT-B/32 goes from 74.9% to 80.7%.
# - **A better recipe buys much of it back.** DeiT-B, the same ViT-B/16 trained on ImageNet-1k
#   only with strong augmentation, regularisation and a long schedule, reaches 82.0% in that table
#   (lesson 10 is about DeiT's other ingredient, a CNN teacher).
# - **At scale, the bias stops deciding.** NFNet ConvNets pre-trained on JFT-4B match ViTs of
#   comparable compute (Smith et al. 2023, "ConvNets match vision transformers at scale"). What
#   makes ViTs the common choice is practical: the same architecture as language models, inputs
#   that are just a sequence of tokens (drop some, merge some: lesson 13; mix in text tokens), and
#   pretrained weights at every size (lesson 12).
#
# "A ViT needs large images" is a common misreading: the course's ViTs work on 32×32 CIFAR-10
# images. What a ViT needs is **data, a teacher or pretraining**. The course measured it: on
# CIFAR-10's 50,000 training images and the same 2-core CPU, the course's plain ViT (lesson 07's
# model) and a compact ResNet were trained by the course's own code; their checkpoints ship with the
# package, and the tour below prints their records.
#
# ## Where to run it
#
# - **Your machine:** clone the repository and run `make lab` (it creates `.venv`, installs the
#   package and opens JupyterLab on `notebooks/`). `make test` runs every test.
# - **Colab:** use the badge at the top of each lesson. The first code cell installs this package
#   (and nothing else: Colab's own PyTorch and ipywidgets stay as they are). For a GPU choose
#   *Runtime → Change runtime type → T4 GPU*.
# - **Binder:** the Binder badge opens JupyterLab with a CPU-only PyTorch, about 2 GB of memory,
#   no GPU. Every lesson runs there; training lessons pick their CPU settings.
# - **A Mac with Apple silicon:** `pick_device()` picks its GPU (PyTorch's `mps` device) and the
#   lessons train there in fp32, without autocast. If your PyTorch lacks an operation on `mps`,
#   set `VIT_LESSONS_DEVICE=cpu` before starting JupyterLab.
#
# Every lesson also has a **quick mode** that shrinks data and epochs so the whole course runs in CI
# in about two minutes on a 2-core CPU. It prints the same shapes; only the numbers from training
# differ. You want the normal mode; to switch, start JupyterLab with `VIT_LESSONS_QUICK=1` (or run
# `import os; os.environ["VIT_LESSONS_QUICK"] = "1"` before a lesson's first cell). Each lesson's
# header states what its normal mode costs.

# %%
# Colab only: install the course package from GitHub. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet --no-deps "git+https://github.com/vit-lessons/vit-lessons@main"

# %% [markdown]
# ## Check your environment
#
# The lessons need PyTorch 2.4 or newer, torchvision, matplotlib and ipywidgets. The report below
# names your hardware: every time or speed a lesson prints was measured on the machine that
# printed it, so compare yours with it. The widget versions matter for lesson 09's explorer.

# %%
import torch

import vit_lessons
from vit_lessons.settings import environment_report, is_quick, pick_device, seed_everything

seed_everything(0)
device = pick_device()
for key, value in environment_report().items():
    print(f"{key:>20}: {value}")
print(f"{'quick mode':>20}: {is_quick()}")

# %% [markdown]
# **Mixed precision.** On a GPU, training in 16-bit floats is about twice as fast. GPUs with
# compute capability 8.0 or more (A100, L4, H100, RTX 30xx+) have native **bf16**, which keeps
# fp32's range and needs no loss scaling. Older ones (the free Colab **T4** is 7.5) only have
# **fp16**, whose small range makes gradients underflow unless a `GradScaler` multiplies the loss.
# `vit_lessons` decides by compute capability, because `torch.cuda.is_bf16_supported()` can answer
# True on a T4 through slow emulation. On a CPU the lessons train in fp32.

# %% tags=["nbval-check-output"]
from vit_lessons.settings import autocast_dtype

for name, capability in [("T4", (7, 5)), ("A100", (8, 0)), ("H100", (9, 0))]:
    print(f"{name:5} (compute capability {capability[0]}.{capability[1]}): {autocast_dtype('cuda', capability)}")
print(f"CPU: {autocast_dtype('cpu')} (full fp32)")

# %% [markdown]
# ## A tour of `vit_lessons`
#
# The package has one module per lesson, in teaching order: `patches`, `position`, `attention`,
# `blocks`, `vit`, then `train`, `interpret` and the variants. Named models are created the way
# timm creates them, and their weights have timm's names and shapes, so real pretrained weights load.

# %%
from vit_lessons import count_parameters, create_model, list_models

print(list_models())

# %% [markdown]
# The course's own trained models ship with the package as **course checkpoints**, each with the
# record of the run that made it (command, hardware, time, test accuracy). The two CIFAR-10 ones, a
# plain ViT and a compact ResNet trained on the same CPU, are the pair "Why a Vision Transformer?"
# promised:

# %%
from vit_lessons.train import course_checkpoints, load_course_checkpoint

for name in course_checkpoints():
    _, info = load_course_checkpoint(name, return_info=True)
    if not info["dataset"].startswith("CIFAR-10"):
        continue  # digits_vit, the small model of the offline 8x8 digits
    minutes = info["wall_seconds"] / 60
    print(f"{name:20} {info['model_name']:26} {info['params']:>10,} parameters  "
          f"{info['test_accuracy']:6.1%} test accuracy after {minutes:4.0f} min of training on {info['hardware'].split(' (')[0]}")

# %% [markdown]
# This pair is the data effect of the ViT paper at the scale of a laptop: with 50,000 images, the
# convolutional network learns more in less time. Lesson 08 plots both runs against the clock;
# lesson 10 asks whether the ResNet can teach the ViT, the DeiT way.
#
# Counting parameters does not need memory: build the model on PyTorch's `meta` device, which
# records shapes only. ViT-H/14 would otherwise take 2.5 GB.

# %% tags=["nbval-check-output"]
for name in ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
             "vit_large_patch16_224", "vit_huge_patch14_224", "vit_cifar_patch4_32"]:
    model = create_model(name, device="meta")
    print(f"{name:26} {count_parameters(model):>13,} parameters")

# %% [markdown]
# A forward pass through the small CIFAR-10 model: a batch of 4 RGB images of 32×32 pixels
# becomes 64 patch tokens plus one class token of width 128, and finally 10 class scores.

# %% tags=["nbval-check-output"]
model = create_model("vit_cifar_patch4_32").eval()
images = torch.randn(4, 3, 32, 32)  # (B, C, H, W)
with torch.no_grad():
    tokens = model.forward_features(images)  # (B, 1 + N, D)
    logits = model.forward_head(tokens)  # (B, classes)
print("images:", tuple(images.shape))
print("tokens:", tuple(tokens.shape))
print("logits:", tuple(logits.shape))

# %% [markdown]
# The whole model in one picture, drawn from the model object itself (`vit_lessons.diagrams`): every
# stage from image to logits, with the tensor shape on each arrow. Lessons 01–07 build these stages
# one by one; lesson 07 assembles them.

# %%
import matplotlib.pyplot as plt

from vit_lessons.diagrams import vit_diagram

vit_diagram(model, "vit_cifar_patch4_32")
plt.show()

# %% [markdown]
# Mistakes get a message that says what to do, before any matrix multiply fails deep inside torch:

# %% tags=["nbval-check-output"]
for bad in [torch.randn(3, 32, 32), torch.randn(4, 32, 32, 3), torch.zeros(4, 3, 32, 32, dtype=torch.uint8)]:
    try:
        model(bad)
    except (ValueError, TypeError) as error:
        print(f"{type(error).__name__}: {error}\n")

# %% [markdown]
# ## Self-check exercises
#
# Lessons end with exercises. Each is a stub that raises `NotImplementedError` until you fill it
# in, followed by a check cell. The check says **correct**, **not attempted**, or what is wrong;
# `ex.hint()` and `ex.solution()` are one call away. An unsolved exercise never breaks the cells
# after it. Here is lesson 04's check on an untouched stub and on a classic mistake (scaling by
# d instead of sqrt(d)):

# %%
# EXERCISE 04.attention: my_attention
def my_attention(q, k, v, mask=None):
    raise NotImplementedError  # your code here

# %% tags=["nbval-check-output"]
from vit_lessons.exercises import get_exercise

ex = get_exercise("04.attention")
ex.check(my_attention)

# %%
def wrong_scale_attention(q, k, v, mask=None):
    weights = (q @ k.transpose(-2, -1) / q.shape[-1]).softmax(-1)
    return weights @ v, weights


ex.check(wrong_scale_attention)

# %% [markdown]
# ## Summary
#
# - Your environment works; the report above names the hardware behind every number you will see.
# - `vit_lessons` holds the finished code, one module per lesson, with timm's weight layout.
# - Exercises check themselves: fill in a stub and run the check cell.
#
# **Next:** [lesson 01](01_images_as_patches.ipynb) cuts an image into patches.
