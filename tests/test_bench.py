"""The benchmark compares like with like: timm's twin computes our model's function exactly."""

import pytest
import torch

from vit_lessons.bench import compare_throughput, format_table, timm_twin, training_throughput
from vit_lessons.train import build_model, get_config

pytest.importorskip("timm")


@pytest.mark.parametrize("name", ["digits", "cifar10-quick", "cifar10"])
def test_timm_twin_gives_the_same_logits(name):
    config = get_config(name)
    torch.manual_seed(0)
    ours = build_model(config).eval()
    twin = timm_twin(ours).eval()
    channels, height, width = ours.patch_embed.in_chans, *ours.patch_embed.img_size
    images = torch.randn(3, channels, height, width)
    with torch.no_grad():
        torch.testing.assert_close(twin(images), ours(images), rtol=1e-5, atol=1e-5)
    assert type(twin).__module__.startswith("timm.")


def test_throughput_comparison_reports_both_and_their_ratio():
    config = get_config("digits", batch_size=16)
    result = compare_throughput(config, steps=2, rounds=1)
    assert result["ours_images_per_second"] > 0 and result["timm_images_per_second"] > 0
    assert result["ratio"] == pytest.approx(result["ours_images_per_second"] / result["timm_images_per_second"])
    table = format_table({"config": "digits", "model": config.model, "device_name": "CPU", "throughput": result})
    assert "training images/s" in table and f"{result['ratio']:.2f}" in table


def test_training_throughput_updates_the_weights():
    model = build_model(get_config("digits"))
    before = [p.detach().clone() for p in model.parameters()]
    rate = training_throughput(model, torch.randn(8, 1, 8, 8), torch.arange(8), steps=1)
    assert rate > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_time_to_accuracy_trains_both_models_identically(tmp_path):
    from vit_lessons.bench import compare_time_to_accuracy

    config = get_config("digits", epochs=1, per_class_train=10, per_class_test=5)
    result = compare_time_to_accuracy(config, target=0.0, device="cpu", out=tmp_path)
    # same initial weights, same data order: the same function, so the same accuracy each epoch
    assert result["ours"]["test_accuracy_per_epoch"] == result["timm"]["test_accuracy_per_epoch"]
    assert result["ours"]["epochs_to_target"] == result["timm"]["epochs_to_target"] == 1
    assert (tmp_path / "ours" / "summary.json").exists() and (tmp_path / "timm" / "summary.json").exists()


def test_inference_command_prints_and_saves_the_table(tmp_path, capsys):
    import json

    from vit_lessons import efficient

    output = tmp_path / "inference.json"
    argv = ["--models", "vit_digits_patch2_8", "--img-size", "8", "--batch-sizes", "2"]
    argv += ["--dtypes", "fp32", "--repeats", "1", "--tome-model", "vit_digits_patch2_8", "--tome-r", "2"]
    argv += ["--tome-batch", "2", "--output", str(output)]
    assert efficient.main(argv) == 0
    saved = json.loads(output.read_text())
    printed = capsys.readouterr().out
    assert json.loads(printed) == saved
    assert saved["rows"][0]["batch_size"] == 2 and "token_merging" in saved


def test_the_inference_alias_is_gone_from_the_training_bench():
    from vit_lessons import bench

    with pytest.raises(SystemExit):
        bench.main(["--inference"])
