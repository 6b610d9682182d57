"""An interactive attention explorer for JupyterLab, Colab and Binder (core ipywidgets only).

Taught in lesson 09 (``notebooks/09_attention_maps.ipynb``).

    explorer = AttentionExplorer(model, {"cat": cat_image, "ship": ship_image}, class_names=classes)
    explorer.widget          # display it (last expression of a cell)
    explorer.static_figure() # the same views as a plain matplotlib figure, for readers without a kernel

Controls: the image, the layer (1 = first), the head (or the mean over heads), the query token (0 = the class
token, k = patch k, row by row) and the method (raw attention of that layer, attention rollout up to
that layer, gradient rollout up to that layer for a chosen class). The figure is rendered to PNG with
matplotlib's Agg backend and shown in an ``ipywidgets.Image`` (the same on ipywidgets 7 and 8). One
forward pass per image is cached (maps, logits), and gradients per (image, class), so dragging a
slider only re-draws.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .interpret import (
    attention_gradients,
    attention_maps,
    attention_modules,
    attention_rollout,
    gradient_rollout_from,
    token_heatmap,
)

__all__ = ["AttentionExplorer", "METHODS", "EXPLORER_CLASS"]

METHODS = ("raw", "rollout", "gradient rollout")
EXPLORER_CLASS = "vit-attention-explorer"  # a CSS class on the explorer's box (the browser test finds it)


def _as_display_image(name: str, image) -> torch.Tensor:
    """A (C, H, W) float image in [0, 1] from a tensor or array (uint8 or float, CHW or HWC)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image {name!r} must be a torch.Tensor or numpy array, got {type(image).__name__}")
    # What is shown lives on the CPU: matplotlib needs Tensor.numpy(), which raises for CUDA tensors, and
    # normalising with a CPU mean would fail on a GPU image. model_input() moves it to the model.
    image = image.detach().cpu()
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ValueError(f"image {name!r} must have shape (C, H, W), got {tuple(image.shape)}")
    if image.shape[0] not in (1, 3) and image.shape[-1] in (1, 3):
        image = image.permute(2, 0, 1)  # HWC → CHW
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    elif not image.is_floating_point():
        raise TypeError(f"image {name!r} must be uint8 (0..255) or float (0..1), got {image.dtype}")
    image = image.float()
    if image.min() < -1e-3 or image.max() > 1 + 1e-3:
        raise ValueError(
            f"image {name!r} has values in [{image.min():.2f}, {image.max():.2f}]; pass the displayable image "
            "in [0, 1] (or uint8) and give mean/std: the explorer normalises it for the model"
        )
    return image.clamp(0, 1)


class AttentionExplorer:
    """Explore what each layer, head and token of a ViT attends to.

    Args:
        model: a vit_lessons model (ViT, DeiT); it is put in ``eval()`` mode.
        images: name → image (C, H, W) in [0, 1] or uint8, at the model's input size.
        class_names: names for the output classes (default: "class 0", ...).
        mean, std: per-channel normalisation applied before the model (as in training); None: none.
        figsize, dpi: the rendered figure.
    """

    def __init__(
        self,
        model: nn.Module,
        images: Mapping,
        class_names=None,
        mean=None,
        std=None,
        figsize=(6.4, 3.0),
        dpi: int = 80,
    ):
        self.layers = len(attention_modules(model))  # also checks the model type
        if not isinstance(images, Mapping) or not images:
            raise ValueError("images must be a non-empty dict {name: image (C, H, W)}")
        self.model = model.eval()
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 1))
        patch_embed = getattr(model, "patch_embed", None)
        if patch_embed is None or not hasattr(patch_embed, "grid_size"):
            raise ValueError("the model needs a patch_embed with grid_size (rows, cols) to place tokens on the image")
        self.grid_size = tuple(patch_embed.grid_size)
        self.heads = attention_modules(model)[0].num_heads
        self.images = {str(name): _as_display_image(str(name), image) for name, image in images.items()}
        expected = tuple(patch_embed.img_size)
        for name, image in self.images.items():
            if tuple(image.shape[-2:]) != expected:
                raise ValueError(
                    f"image {name!r} is {image.shape[-2]}x{image.shape[-1]} but the model takes "
                    f"{expected[0]}x{expected[1]}; resize it first"
                )
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).cpu().view(-1, 1, 1)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32).cpu().view(-1, 1, 1)
        self.figsize, self.dpi = figsize, dpi
        self._forward_cache: dict[str, tuple[list[torch.Tensor], torch.Tensor]] = {}
        self._grad_cache: dict[tuple[str, int], list[torch.Tensor]] = {}
        self.forward_calls = 0
        num_classes = self._forward(next(iter(self.images)))[1].shape[-1]
        self.class_names = [f"class {i}" for i in range(num_classes)] if class_names is None else list(class_names)
        if len(self.class_names) != num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for a model with {num_classes} classes")
        self._widgets = None
        self._figure = None

    # -- computation (cached) ------------------------------------------------------------------------
    def model_input(self, name: str) -> torch.Tensor:
        """(1, C, H, W), normalised as in training, on the model's device."""
        image = self.images[name]
        if self.mean is not None:
            image = (image - self.mean) / self.std
        device = next(self.model.parameters()).device
        return image[None].to(device)

    def _forward(self, name: str):
        if name not in self._forward_cache:
            maps, logits = attention_maps(self.model, self.model_input(name), return_logits=True)
            self.forward_calls += 1
            self._forward_cache[name] = ([m.cpu() for m in maps], logits.float().cpu())
        return self._forward_cache[name]

    def _grads(self, name: str, target: int):
        key = (name, int(target))
        if key not in self._grad_cache:
            _, grads, _ = attention_gradients(self.model, self.model_input(name), int(target))
            self._grad_cache[key] = [g.cpu() for g in grads]
        return self._grad_cache[key]

    def probabilities(self, name: str) -> torch.Tensor:
        """(classes,) softmax probabilities for image ``name``."""
        return self._forward(name)[1][0].softmax(-1)

    def top_classes(self, name: str, k: int = 3) -> list[tuple[str, float]]:
        probs = self.probabilities(name)
        values, indices = probs.topk(min(k, probs.numel()))
        return [(self.class_names[i], float(v)) for v, i in zip(values, indices.tolist())]

    def query_token(self, query: int) -> int:
        """Control value → token index: 0 is the class token, k ≥ 1 is patch k - 1 (after the prefix)."""
        patches = self.grid_size[0] * self.grid_size[1]
        if isinstance(query, bool) or not isinstance(query, (int, np.integer)) or not 0 <= query <= patches:
            raise ValueError(f"query must be an int in [0, {patches}] (0: class token, k: patch k), got {query!r}")
        return 0 if query == 0 else self.num_prefix_tokens + int(query) - 1

    def heatmap(self, name: str, layer: int, head="mean", query: int = 0, method: str = "raw", target=None):
        """The (H, W) map in [0, 1] shown over image ``name`` (numpy)."""
        if name not in self.images:
            raise ValueError(f"unknown image {name!r}; choose from {sorted(self.images)}")
        if not 0 <= layer < self.layers:
            raise ValueError(f"layer must be in [0, {self.layers - 1}], got {layer}")
        if head != "mean" and not (isinstance(head, (int, np.integer)) and 0 <= head < self.heads):
            raise ValueError(f"head must be 'mean' or an int in [0, {self.heads - 1}], got {head!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        token = self.query_token(query)
        maps, logits = self._forward(name)
        heads = slice(None) if head == "mean" else slice(int(head), int(head) + 1)
        chosen = [m[:, heads] for m in maps[: layer + 1]]  # layers 1..l, (1, h', N, N) each
        if method == "raw":
            matrix = chosen[-1].mean(dim=1)  # (1, N, N)
        elif method == "rollout":
            matrix = attention_rollout(chosen)
        else:
            target = int(logits[0].argmax()) if target is None else int(target)
            grads = [g[:, heads] for g in self._grads(name, target)[: layer + 1]]
            matrix = gradient_rollout_from(chosen, grads)
        row = matrix[0, token]  # (N,)
        size = tuple(self.images[name].shape[-2:])
        return token_heatmap(row, self.grid_size, self.num_prefix_tokens, image_size=size).numpy()

    # -- drawing -------------------------------------------------------------------------------------
    def _title(self, layer, head, query, method, target) -> str:
        who = (
            "class token"
            if query == 0
            else f"patch {query} (row {(query - 1) // self.grid_size[1]}, col {(query - 1) % self.grid_size[1]})"
        )
        heads = "mean of heads" if head == "mean" else f"head {head}"
        extra = f", class {self.class_names[target]}" if method == "gradient rollout" and target is not None else ""
        upto = "layer " if method == "raw" else "layers 1-"
        return f"{method}, {upto}{layer + 1}, {heads}\nquery: {who}{extra}"

    def _canvas(self, name: str):
        """One figure reused for every redraw (building a figure is most of the cost of a frame)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        if getattr(self, "_figure", None) is None:
            figure = Figure(figsize=self.figsize, dpi=self.dpi)
            FigureCanvasAgg(figure)
            axes = figure.subplots(1, 2)
            image = self.images[name].permute(1, 2, 0).numpy()
            blank = np.zeros(image.shape[:2])
            gray = image.shape[-1] == 1
            shown = [
                ax.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, interpolation="nearest")
                for ax in axes
            ]
            overlay = axes[1].imshow(blank, cmap="inferno", alpha=0.6, vmin=0, vmax=1, interpolation="bilinear")
            figure.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.04, label="relative weight")
            rows, cols = self.grid_size
            box = Rectangle(
                (0, 0),
                image.shape[1] / cols,
                image.shape[0] / rows,
                fill=False,
                edgecolor="cyan",
                linewidth=1.5,
                visible=False,
            )
            axes[1].add_patch(box)
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
            axes[0].set_title(" ", fontsize=9)
            axes[1].set_title(" \n ", fontsize=8)
            figure.tight_layout()
            self._figure = (figure, axes, shown, overlay, box)
        return self._figure

    def render_png(self, name: str, layer: int, head="mean", query: int = 0, method: str = "raw", target=None):
        """PNG bytes of the image and its overlay (what the explorer shows)."""
        heat = self.heatmap(name, layer, head, query, method, target)
        figure, axes, shown, overlay, box = self._canvas(name)
        image = self.images[name].permute(1, 2, 0).numpy()
        for artist in shown:
            artist.set_data(image[..., 0] if image.shape[-1] == 1 else image)
        overlay.set_data(heat)
        box.set_visible(bool(query))
        if query:
            rows, cols = self.grid_size
            cell_h, cell_w = image.shape[0] / rows, image.shape[1] / cols
            r, c = divmod(query - 1, cols)
            box.set_xy((c * cell_w - 0.5, r * cell_h - 0.5))
        axes[0].set_title(f"{name}: {self.top_classes(name, 1)[0][0]}", fontsize=9)
        axes[1].set_title(self._title(layer, head, query, method, target), fontsize=8)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def predictions_html(self, name: str, k: int = 3) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>{prob:.1%}</td></tr>"
            for label, prob in self.top_classes(name, k)
        )
        return f"<b>Predicted classes</b><table>{rows}</table>"

    def static_figure(self, names=None, layer: int | None = None, query: int = 0):
        """A plain matplotlib figure: per image, the image and raw / rollout / gradient rollout maps."""
        import matplotlib.pyplot as plt

        names = list(self.images)[:3] if names is None else list(names)
        layer = self.layers - 1 if layer is None else layer
        figure, axes = plt.subplots(len(names), 4, figsize=(8, 2.1 * len(names)), dpi=self.dpi, squeeze=False)
        for row, name in enumerate(names):
            image = self.images[name].permute(1, 2, 0).numpy()
            shown = image[..., 0] if image.shape[-1] == 1 else image
            top = self.top_classes(name, 1)[0]
            axes[row, 0].imshow(shown, cmap="gray" if image.shape[-1] == 1 else None)
            axes[row, 0].set_title(f"{name}\npredicted {top[0]} ({top[1]:.0%})", fontsize=8)
            for col, method in enumerate(METHODS, start=1):
                heat = self.heatmap(name, layer, "mean", query, method)
                axes[row, col].imshow(shown, cmap="gray" if image.shape[-1] == 1 else None)
                axes[row, col].imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
                axes[row, col].set_title(f"{method}\n(layer {layer + 1}, class token)", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        figure.tight_layout()
        return figure

    # -- the widget ----------------------------------------------------------------------------------
    @property
    def widget(self):
        """The explorer's ipywidgets box (built on first use)."""
        if self._widgets is None:
            self._build()
        return self._widgets["box"]

    @property
    def controls(self) -> dict:
        """The controls by name: image, layer, head, query, method, target (for tests and scripts)."""
        if self._widgets is None:
            self._build()
        return self._widgets

    def _build(self) -> None:
        import ipywidgets as w

        patches = self.grid_size[0] * self.grid_size[1]
        style = {"description_width": "70px"}
        wide = w.Layout(width="320px")
        controls = {
            "image": w.Dropdown(options=list(self.images), description="image", style=style, layout=wide),
            "layer": w.IntSlider(
                value=self.layers,
                min=1,
                max=self.layers,
                description="layer",
                style=style,
                layout=wide,
                readout_format="d",
            ),
            "head": w.Dropdown(
                options=[("mean", "mean")] + [(str(h), h) for h in range(self.heads)],
                value="mean",
                description="head",
                style=style,
                layout=wide,
            ),
            "query": w.IntSlider(value=0, min=0, max=patches, description="query", style=style, layout=wide),
            "method": w.ToggleButtons(options=list(METHODS), value="raw", description="method", style=style),
            "target": w.Dropdown(
                options=[(n, i) for i, n in enumerate(self.class_names)], description="class", style=style, layout=wide
            ),
        }
        controls["query_label"] = w.Label()
        controls["output"] = w.Image(format="png")
        controls["predictions"] = w.HTML()
        controls["box"] = w.VBox(
            [
                w.HBox(
                    [
                        w.VBox([controls["image"], controls["layer"], controls["head"]]),
                        w.VBox([controls["query"], controls["query_label"], controls["target"]]),
                    ]
                ),
                controls["method"],
                w.HBox([controls["output"], controls["predictions"]]),
            ]
        )
        controls["box"].add_class(EXPLORER_CLASS)
        self._widgets = controls
        controls["image"].observe(self._on_image, names="value")
        for key in ("layer", "head", "query", "method", "target"):
            controls[key].observe(self.update, names="value")
        self._on_image()

    def _on_image(self, change=None) -> None:
        name = self._widgets["image"].value
        predicted = int(self._forward(name)[1][0].argmax())
        if self._widgets["target"].value != predicted:
            self._widgets["target"].value = predicted  # gradient rollout starts at the predicted class; redraws
        else:
            self.update()

    def update(self, change=None) -> None:
        """Re-draw from the controls' current values (the callback of every control)."""
        c = self._widgets
        query = c["query"].value
        c["query_label"].value = (
            "class token"
            if query == 0
            else f"patch {query}: row {(query - 1) // self.grid_size[1]}, col {(query - 1) % self.grid_size[1]}"
        )
        c["target"].disabled = c["method"].value != "gradient rollout"
        target = c["target"].value if c["method"].value == "gradient rollout" else None
        c["output"].value = self.render_png(
            c["image"].value, c["layer"].value - 1, c["head"].value, query, c["method"].value, target
        )
        c["predictions"].value = self.predictions_html(c["image"].value)
