"""The attention explorer's callbacks, driven directly (widget state is not something nbval compares)."""

import matplotlib
import numpy as np
import pytest
import torch

import vit_lessons as vl
from vit_lessons.interpret import attention_maps, attention_rollout, gradient_rollout, token_heatmap
from vit_lessons.widgets import EXPLORER_CLASS, AttentionExplorer

matplotlib.use("Agg")

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = vl.create_model("vit_cifar_patch4_32", depth=3)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    return model.eval()


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(1)
    return {
        "noise": torch.rand(3, 32, 32, generator=generator),
        "stripes": (torch.arange(32) % 8 < 4).float().expand(3, 32, 32).clone(),
        "uint8": (torch.rand(32, 32, 3, generator=generator) * 255).to(torch.uint8),
    }


@pytest.fixture
def explorer(model, images):
    return AttentionExplorer(model, images, class_names=[f"c{i}" for i in range(10)], mean=MEAN, std=STD)


def normalized(image):
    return ((image - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[None]


def test_heatmap_raw_is_the_layer_head_query_row(explorer, model, images):
    maps = attention_maps(model, normalized(images["noise"]))
    for layer, head, query in [(0, 2, 0), (2, "mean", 0), (1, 5, 10)]:
        token = 0 if query == 0 else 1 + query - 1
        weights = maps[layer][0].mean(0) if head == "mean" else maps[layer][0, head]
        expected = token_heatmap(weights[token], (8, 8), 1, image_size=(32, 32)).numpy()
        actual = explorer.heatmap("noise", layer, head, query, "raw")
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert not np.allclose(explorer.heatmap("noise", 0, 0, 0), explorer.heatmap("noise", 2, 0, 0))


def test_heatmap_rollout_and_gradient_rollout_up_to_the_layer(explorer, model, images):
    inputs = normalized(images["stripes"])
    maps = attention_maps(model, inputs)
    expected = token_heatmap(attention_rollout(maps[:2])[0, 0], (8, 8), 1, image_size=(32, 32)).numpy()
    np.testing.assert_allclose(explorer.heatmap("stripes", 1, "mean", 0, "rollout"), expected, atol=1e-5)
    relevance = gradient_rollout(model, inputs, target_class=4)
    expected = token_heatmap(relevance[0, 0], (8, 8), 1, image_size=(32, 32)).numpy()
    np.testing.assert_allclose(explorer.heatmap("stripes", 2, "mean", 0, "gradient rollout", 4), expected, atol=1e-4)
    other = explorer.heatmap("stripes", 2, "mean", 0, "gradient rollout", 7)
    assert np.abs(other - expected).max() > 1e-3


def test_query_control_maps_to_tokens(explorer):
    assert explorer.query_token(0) == 0
    assert explorer.query_token(1) == 1
    assert explorer.query_token(64) == 64
    explorer.num_prefix_tokens = 2  # as for DeiT: patches start after two prefix tokens
    assert explorer.query_token(1) == 2 and explorer.query_token(64) == 65
    with pytest.raises(ValueError, match=r"\[0, 64\]"):
        explorer.query_token(65)


def test_controls_redraw_and_forward_runs_once_per_image(explorer):
    controls = explorer.controls
    assert EXPLORER_CLASS in controls["box"]._dom_classes
    first = bytes(controls["output"].value)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    seen = {first}
    assert controls["layer"].value == 3 and (controls["layer"].min, controls["layer"].max) == (1, 3)
    for layer in (1, 2):  # dragging the layer slider (1-based; it starts at the last layer)
        controls["layer"].value = layer
        seen.add(bytes(controls["output"].value))
    for query in (5, 20, 40):  # and the query slider
        controls["query"].value = query
        seen.add(bytes(controls["output"].value))
    assert len(seen) == 6, "every change must draw a different picture"
    assert "patch 40: row 4, col 7" == controls["query_label"].value
    assert explorer.forward_calls == 1, "one forward pass per image, cached"
    controls["image"].value = "stripes"
    controls["image"].value = "noise"
    assert explorer.forward_calls == 2
    controls["method"].value = "gradient rollout"
    assert not controls["target"].disabled
    before = bytes(controls["output"].value)
    controls["target"].value = (controls["target"].value + 1) % 10
    assert bytes(controls["output"].value) != before
    controls["method"].value = "raw"
    assert controls["target"].disabled


def test_changing_image_selects_its_predicted_class_and_shows_probabilities(explorer):
    controls = explorer.controls
    for name in ("stripes", "uint8"):
        controls["image"].value = name
        probs = explorer.probabilities(name)
        assert controls["target"].value == int(probs.argmax())
        html = controls["predictions"].value
        top = explorer.top_classes(name, 3)
        assert [label for label, _ in top] == [f"c{i}" for i in probs.topk(3).indices.tolist()]
        assert f"{top[0][0]}</td><td style='text-align:right'>{top[0][1]:.1%}" in html
    assert abs(float(explorer.probabilities("noise").sum()) - 1) < 1e-5


def test_static_figure_has_the_three_methods(explorer):
    figure = explorer.static_figure(["noise", "stripes"])
    titles = [ax.get_title() for ax in figure.axes]
    assert len(figure.axes) == 8
    assert sum("rollout" in t and "gradient" not in t for t in titles) == 2
    assert sum("gradient rollout" in t for t in titles) == 2
    matplotlib.pyplot.close(figure)


def test_model_outputs_unchanged_by_the_explorer(model, images):
    inputs = normalized(images["noise"])
    with torch.no_grad():
        before = model(inputs)
    explorer = AttentionExplorer(model, images, mean=MEAN, std=STD)
    explorer.controls["method"].value = "gradient rollout"
    with torch.no_grad():
        assert torch.equal(model(inputs), before)
    assert all(p.grad is None for p in model.parameters())
    assert explorer.class_names[3] == "class 3"


def test_explorer_errors_name_the_problem(model, images):
    with pytest.raises(ValueError, match="non-empty dict"):
        AttentionExplorer(model, {})
    with pytest.raises(ValueError, match="resize"):
        AttentionExplorer(model, {"big": torch.rand(3, 64, 64)})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AttentionExplorer(model, {"normalised": torch.randn(3, 32, 32) * 3})
    with pytest.raises(ValueError, match="class_names has 2 names"):
        AttentionExplorer(model, images, class_names=["a", "b"])
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        AttentionExplorer(model, {"list": [[0.0]]})
    explorer = AttentionExplorer(model, images)
    with pytest.raises(ValueError, match="layer must be in"):
        explorer.heatmap("noise", 3)
    with pytest.raises(ValueError, match="head must be"):
        explorer.heatmap("noise", 0, head=8)
    with pytest.raises(ValueError, match="method must be one of"):
        explorer.heatmap("noise", 0, method="grad")
    with pytest.raises(ValueError, match="unknown image"):
        explorer.heatmap("cat", 0)
