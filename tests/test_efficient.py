"""vit_lessons.efficient: attention variants and memory, token merging (ToMe), the inference benchmark."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_lessons import create_model
from vit_lessons.efficient import (
    apply_token_merging,
    bipartite_soft_matching,
    compile_benchmark,
    explicit_attention,
    inference_benchmark,
    main,
    masked_attention,
    merge_weighted,
    merged_image,
    patch_labels,
    peak_memory,
    sdpa_backend,
    time_call,
    token_schedule,
)
from vit_lessons.settings import cpu_model
from vit_lessons.tome import _attention_with_size


@pytest.fixture
def model():
    torch.manual_seed(0)
    vit = create_model("vit_cifar_patch4_32").eval()  # 64 patches + class token, 4 blocks
    with torch.no_grad():  # randomise the LayerNorms too, so a skipped or reordered norm shows
        for module in vit.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.normal_(1.0, 0.3)
                module.bias.normal_(0.0, 0.3)
    return vit


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# -- attention variants --------------------------------------------------------------------------
def test_the_three_attentions_agree():
    q, k, v = torch.randn(3, 2, 4, 37, 16).unbind(0)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(explicit_attention(q, k, v), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked_attention(q, k, v), expected, atol=1e-5, rtol=1e-5)


def test_sdpa_backend_names_the_kernel_that_ran():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 2, 64, 16)
    with sdpa_kernel(SDPBackend.MATH):
        assert sdpa_backend(q, q, q) == "math"
    assert sdpa_backend(q, q, q) in {"flash", "memory-efficient", "cudnn", "math"}


def test_explicit_attention_stores_the_score_matrix_and_sdpa_does_not():
    q = torch.randn(1, 2, 512, 32)
    scores_bytes = 2 * 512 * 512 * 4  # one (B, h, N, N) float32 matrix
    explicit = peak_memory(explicit_attention, q, q, q)
    masked = peak_memory(masked_attention, q, q, q)
    assert explicit >= scores_bytes
    assert masked >= scores_bytes  # the tutorial's "efficient" attention saves nothing
    if sdpa_backend(q, q, q) != "math":
        assert peak_memory(F.scaled_dot_product_attention, q, q, q) < scores_bytes / 2


def test_time_call_checks_repeats():
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)
    assert time_call(torch.ones, 3, repeats=2) > 0


# -- token merging: the parts --------------------------------------------------------------------
def test_bipartite_matching_merges_the_most_similar_pair():
    # A = positions 0, 2; B = positions 1, 3. Token 2 points the same way as token 3.
    metric = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.1]]])
    plan = bipartite_soft_matching(metric, 1)
    assert plan.merged_a.tolist() == [[1]]  # A's second token (position 2) ...
    assert plan.into_b.tolist() == [[1]]  # ... goes into B's second token (position 3)
    assert plan.kept_a.tolist() == [[0]]


def test_merged_tokens_are_size_weighted_averages():
    metric = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.1]]])
    plan = bipartite_soft_matching(metric, 1)
    tokens = torch.tensor([[[0.0], [10.0], [4.0], [8.0]]])
    size = torch.tensor([[[1.0], [1.0], [1.0], [3.0]]])
    merged, new_size = merge_weighted(plan, tokens, size)
    # [kept A (pos 0) | B pos 1 | B pos 3 merged with pos 2 as (1·4 + 3·8) / 4 = 7]
    assert merged.flatten().tolist() == [0.0, 10.0, 7.0]
    assert new_size.flatten().tolist() == [1.0, 1.0, 4.0]


def test_proportional_attention_treats_a_token_of_size_two_as_two_copies():
    torch.manual_seed(0)
    attn = create_model("vit_cifar_patch4_32").blocks[0].attn.eval()
    tokens = torch.randn(1, 5, 128)
    duplicated = torch.cat([tokens, tokens[:, -1:]], dim=1)  # the last token twice
    with torch.no_grad():
        expected, _ = _attention_with_size(attn, duplicated, None)
        sized, _ = _attention_with_size(attn, tokens, torch.tensor([[[1.0]] * 4 + [[2.0]]]))
        attn.fused_attn = False
        explicit, _ = _attention_with_size(attn, tokens, torch.tensor([[[1.0]] * 4 + [[2.0]]]))
    torch.testing.assert_close(sized, expected[:, :5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, expected[:, :5], atol=1e-5, rtol=1e-5)


def test_token_schedule_clamps_r():
    assert token_schedule(65, 8, 4) == [65, 57, 49, 41, 33]
    assert token_schedule(65, [0, 4, 30, 1], 4) == [65, 65, 61, 31, 30]
    assert token_schedule(10, 100, 3) == [10, 6, 4, 3]
    assert token_schedule(9, 100, 2, num_prefix_tokens=0) == [9, 5, 3]


# -- token merging on a model --------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
def test_r0_leaves_outputs_unchanged(model, images, fused):
    for block in model.blocks:
        block.attn.fused_attn = fused
    with torch.no_grad():
        expected = model(images)
        with apply_token_merging(model, 0) as handle:
            actual = model(images)
    assert torch.equal(actual, expected)
    assert handle.token_counts == [65] * 5


def test_token_counts_follow_the_schedule(model, images):
    with torch.no_grad(), apply_token_merging(model, [3, 0, 20, 100]) as handle:
        logits = model(images)
        assert handle.token_counts == [65, 62, 62, 42, 22]  # 41 patch tokens: at most 20 merge
    assert logits.shape == (3, 10)


def test_sizes_sum_to_the_original_token_count(model, images):
    with torch.no_grad(), apply_token_merging(model, 8, trace_source=True) as handle:
        model(images)
        size, source = handle.size, handle.source
    assert size.shape == (3, 33, 1)
    assert torch.equal(size.sum(dim=(1, 2)), torch.full((3,), 65.0))
    assert torch.equal(source.sum(dim=1), torch.ones(3, 65))  # every input token lands in exactly one
    assert torch.equal(source.sum(dim=2, keepdim=True), size)  # a token's size = the patches it holds
    assert torch.equal(source[:, 0], F.one_hot(torch.tensor(0), 65).float().expand(3, 65))  # class token alone


def test_merging_changes_the_output_but_keeps_the_prediction_close(model, images):
    with torch.no_grad():
        expected = model(images)
        with apply_token_merging(model, 4):
            merged = model(images)
    assert not torch.equal(merged, expected)
    assert (merged - expected).abs().max() < 0.5 * expected.abs().max() + 1e-3


def test_remove_restores_the_model_bit_for_bit(model, images):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attributes = [dict(block.__dict__) for block in model.blocks]
    with torch.no_grad():
        expected = model(images)
        handle = apply_token_merging(model, 8)
        model(images)
        handle.remove()
        handle.remove()  # twice is fine
        actual = model(images)
    assert torch.equal(actual, expected)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [dict(block.__dict__) for block in model.blocks] == attributes
    apply_token_merging(model, 2).remove()  # can be applied again after removal


def test_no_class_token_model(images):
    torch.manual_seed(0)
    vit = create_model("vit_cifar_patch4_32", class_token=False, global_pool="avg").eval()
    with torch.no_grad(), apply_token_merging(vit, 16, trace_source=True) as handle:
        vit(images)
        assert handle.token_counts == [64, 48, 32, 16, 8]
        assert torch.equal(handle.size.sum(dim=(1, 2)), torch.full((3,), 64.0))


def test_bad_arguments_are_rejected(model):
    with pytest.raises(ValueError, match="non-negative"):
        apply_token_merging(model, -1)
    with pytest.raises(ValueError, match="4 blocks"):
        apply_token_merging(model, [1, 2])
    with pytest.raises(TypeError, match="int"):
        apply_token_merging(model, 2.5)
    with pytest.raises(TypeError, match="int"):
        apply_token_merging(model, True)
    with pytest.raises(TypeError, match="no `blocks`"):
        apply_token_merging(nn.Sequential(nn.Linear(2, 2)), 1)
    with pytest.raises(TypeError, match="nn.Module"):
        apply_token_merging("vit", 1)
    handle = apply_token_merging(model, 1)
    with pytest.raises(ValueError, match="already has token merging"):
        apply_token_merging(model, 1)
    handle.remove()


def test_patch_labels_and_merged_image():
    source = torch.tensor([[[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1]]]).float()  # class + 2 regions
    labels = patch_labels(source, 1, (2, 2))
    assert labels.tolist() == [[[0, 0], [1, 1]]]
    image = torch.arange(16.0).reshape(1, 4, 4)  # rows 0-1 average 3.5, rows 2-3 average 11.5
    painted = merged_image(image, labels[0], 2)
    assert painted[0, :2].unique().tolist() == [3.5]
    assert painted[0, 2:].unique().tolist() == [11.5]
    with pytest.raises(ValueError, match="trace_source"):
        patch_labels(None, 1, (2, 2))
    with pytest.raises(ValueError, match="grid"):
        patch_labels(source, 1, (3, 3))


# -- compile and the inference benchmark ---------------------------------------------------------
def test_compile_benchmark_reports_its_figures():
    torch.manual_seed(0)
    tiny = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    result = compile_benchmark(tiny, torch.randn(2, 8), repeats=1, backend="eager")
    assert result["compile_seconds"] > 0 and result["speedup"] > 0
    assert result["max_abs_diff"] < 1e-5


def test_inference_benchmark_rows():
    rows = inference_benchmark(["vit_digits_patch2_8"], batch_sizes=(1, 2), dtypes=["fp32"], img_size=8, repeats=1)
    assert [(row["model"], row["batch_size"], row["dtype"]) for row in rows] == [
        ("vit_digits_patch2_8", 1, "fp32"),
        ("vit_digits_patch2_8", 2, "fp32"),
    ]
    assert all(row["images_per_s"] > 0 and cpu_model() in row["hardware"] for row in rows)
    assert rows[0]["params"] == sum(p.numel() for p in create_model("vit_digits_patch2_8").parameters())


def test_inference_benchmark_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown model"):
        inference_benchmark(["resnet9000"], dtypes=["fp32"])
    with pytest.raises(ValueError, match="not supported on cpu"):
        inference_benchmark(["resnet18"], dtypes=["fp16"])
    with pytest.raises(ValueError, match="batch_sizes"):
        inference_benchmark(["resnet18"], batch_sizes=64)


def test_main_prints_and_saves_json(tmp_path, capsys):
    output = tmp_path / "table.json"
    argv = ["--models", "vit_digits_patch2_8", "--img-size", "8", "--batch-sizes", "2", "--dtypes", "fp32"]
    argv += [
        "--repeats",
        "1",
        "--tome-model",
        "vit_digits_patch2_8",
        "--tome-r",
        "2",
        "--tome-batch",
        "2",
        "--output",
        str(output),
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(output.read_text())
    assert printed["rows"][0]["batch_size"] == 2
    assert printed["token_merging"]["tokens"] == [17, 15, 13, 11, 9]  # 16 patches + class token, 4 blocks
    assert printed["token_merging"]["ratio"] > 0
