"""The pictures of the model are drawn from the model: every number on them is read from its modules."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from vit_lessons import create_model  # noqa: E402
from vit_lessons.diagrams import block_diagram, vit_diagram, vit_stages  # noqa: E402


def _texts(figure) -> str:
    return "\n".join(text.get_text() for ax in figure.axes for text in ax.texts + [ax.title])


def test_the_plain_vit_is_drawn_with_its_own_shapes():
    model = create_model("vit_cifar_small_patch4_32")
    figure = vit_diagram(model, "vit_cifar_small_patch4_32")
    texts = _texts(figure)
    for expected in ["(B, 3, 32, 32)", "(B, 64, 192): 8×8 = 64 patch tokens", "(B, 65, 192)", "(B, 192)",
                     "(B, 10)", "6 × encoder block", "3 heads of d = 64", "192 → 384 → 192", "kernel 4, stride 4",
                     "1,806,538 parameters", "class token"]:  # fmt: skip
        assert expected in texts, expected
    plt.close(figure)


@pytest.mark.parametrize(
    ("overrides", "present", "absent"),
    [
        (dict(global_pool="avg", class_token=False), ["mean over the patch tokens", "(B, 64, 128)"], ["class token"]),
        (dict(pos_embed="sincos"), ["fixed 2-D sin-cos"], ["learned, one per token"]),
        (dict(pos_embed="none"), [], ["position embedding"]),
        (
            dict(stem="conv", stem_channels=(32, 64), global_pool="avg"),
            ["convolutional stem: 3 convolutions"],
            ["kernel 4"],
        ),
        (dict(depth=2, num_heads=4, img_size=48, num_classes=7), ["2 × encoder block", "(B, 3, 48, 48)", "(B, 7)"], []),
    ],
)
def test_every_variant_changes_the_picture(overrides, present, absent):
    texts = "\n".join(
        f"{what} {shape}" for what, shape, _ in vit_stages(create_model("vit_cifar_patch4_32", **overrides))
    )
    for expected in present:
        assert expected in texts, (expected, texts)
    for unexpected in absent:
        assert unexpected not in texts, (unexpected, texts)


def test_the_block_diagram_shows_both_placements_with_a_title():
    figure = block_diagram()
    texts = _texts(figure)
    boxes = [text.get_text() for text in figure.axes[0].texts]
    assert "pre-norm (ViT)" in texts and "post-norm" in texts
    assert boxes.count("LayerNorm") == 4 and boxes.count("+") == 4 and boxes.count("MLP") == 2
    assert figure.axes[0].get_title()
    plt.close(figure)
