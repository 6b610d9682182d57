"""Pretrained weights: timm and Hugging Face checkpoints load into our models with equal logits,
bad checkpoints and offline downloads fail with messages that say what to do, predict ranks classes."""

import re
import socket
import sys
import time

import pytest
import torch
from torch import nn

import vit_lessons.pretrained as pretrained
from vit_lessons import VisionTransformer
from vit_lessons.pretrained import (
    CheckpointMismatchError,
    OfflineError,
    from_pretrained,
    imagenet_class_names,
    layer_decay_param_groups,
    load_hf_state_dict,
    load_timm_state_dict,
    predict,
)

SMALL = dict(img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=4)


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Fresh models have LayerNorm = identity, which would hide a swapped norm1/norm2."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
    return model


def _images(n=3, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


# -- timm ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm")


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


def test_timm_vit_logits_equal_after_loading(timm):
    torch.manual_seed(0)
    reference = _randomise_norms(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **SMALL))
    ours = load_timm_state_dict(VisionTransformer(num_classes=10, **SMALL), reference.state_dict()).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(_images()), reference.eval()(_images()), atol=1e-4, rtol=0)


def test_timm_training_checkpoint_with_ddp_prefix_loads(timm):
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **SMALL).eval()
    wrapped = {"epoch": 3, "model": {f"module.{k}": v for k, v in reference.state_dict().items()}}
    ours = load_timm_state_dict(VisionTransformer(num_classes=10, **SMALL), wrapped).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(_images()), reference(_images()), atol=1e-4, rtol=0)


def test_checkpoint_at_another_resolution_is_resampled_like_timm(timm):
    # 32-px weights into a 48-px model: our loader against timm's own checkpoint filter.
    from timm.models.vision_transformer import checkpoint_filter_fn

    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **SMALL)
    config = {**SMALL, "img_size": 48}
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **config).eval()
    reference.load_state_dict(checkpoint_filter_fn(source.state_dict(), reference))
    ours = load_timm_state_dict(VisionTransformer(num_classes=10, **config), source.state_dict()).eval()
    assert ours.pos_embed.shape == (1, 1 + 12 * 12, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(_images(size=48)), reference(_images(size=48)), atol=1e-4, rtol=0)


def test_deit_distilled_logits_equal_after_loading(timm):
    deit = pytest.importorskip("vit_lessons.deit")
    reference = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=10, **SMALL)
    reference = _randomise_norms(reference).eval()
    ours = load_timm_state_dict(deit.DistilledVisionTransformer(num_classes=10, **SMALL), reference.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(_images()), reference(_images()), atol=1e-4, rtol=0)


SWIN = dict(img_size=32, patch_size=2, embed_dim=16, depths=(1, 2), num_heads=(1, 2), window_size=4, num_classes=5)


def test_swin_logits_equal_after_loading_including_the_original_layout(timm):
    swin = pytest.importorskip("vit_lessons.swin")
    torch.manual_seed(0)
    reference = _randomise_norms(timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **SWIN)).eval()
    with torch.no_grad():
        expected = reference(_images())
        ours = load_timm_state_dict(swin.SwinTransformer(drop_path_rate=0.0, **SWIN), reference.state_dict()).eval()
        torch.testing.assert_close(ours(_images()), expected, atol=1e-4, rtol=0)
        # The original Swin release: head (not head.fc), merging at the end of the previous stage,
        # and the index buffers saved.
        original = {}
        for key, value in reference.state_dict().items():
            key = re.sub(r"^head\.fc\.", "head.", key)
            key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
            original[key] = value
        original["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
        again = load_timm_state_dict(swin.SwinTransformer(drop_path_rate=0.0, **SWIN), original).eval()
        torch.testing.assert_close(again(_images()), expected, atol=1e-4, rtol=0)


# -- Hugging Face ----------------------------------------------------------------------------------
HF_SMALL = dict(
    hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, image_size=32, patch_size=4
)


def _hub_layout(state_dict):
    """Rename transformers 5 module names to those of the ViT files on the Hub (transformers 4)."""
    renames = [
        (r"\blayers\.(\d+)\.attention\.q_proj\.", r"encoder.layer.\1.attention.attention.query."),
        (r"\blayers\.(\d+)\.attention\.k_proj\.", r"encoder.layer.\1.attention.attention.key."),
        (r"\blayers\.(\d+)\.attention\.v_proj\.", r"encoder.layer.\1.attention.attention.value."),
        (r"\blayers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
        (r"\blayers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
        (r"\blayers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
        (r"\blayers\.(\d+)\.layernorm_", r"encoder.layer.\1.layernorm_"),
    ]
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def hf_classifier(transformers):
    torch.manual_seed(0)
    config = transformers.ViTConfig(num_labels=10, **HF_SMALL)
    return _randomise_norms(transformers.ViTForImageClassification(config)).eval()


@pytest.mark.parametrize("layout", ["current", "hub"])
def test_hf_classifier_logits_equal_after_loading(hf_classifier, layout):
    state_dict = hf_classifier.state_dict()
    if layout == "hub":
        state_dict = _hub_layout(state_dict)
        assert any(".attention.attention.query." in k for k in state_dict)
    ours = VisionTransformer(num_classes=10, mlp_ratio=2.0, **SMALL).eval()
    load_hf_state_dict(ours, state_dict)
    with torch.no_grad():
        expected = hf_classifier(pixel_values=_images()).logits
        torch.testing.assert_close(ours(_images()), expected, atol=1e-4, rtol=0)


def test_hf_layer_norm_eps_is_carried_over(hf_classifier):
    ours = load_hf_state_dict(VisionTransformer(num_classes=10, mlp_ratio=2.0, **SMALL), hf_classifier.state_dict())
    norms = [m for m in ours.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 5 and all(m.eps == 1e-12 for m in norms)
    # With timm's 1e-6 the logits drift measurably: the eps is not a detail.
    with torch.no_grad():
        expected = hf_classifier(pixel_values=_images()).logits
        for module in norms:
            module.eps = 1e-6
        assert (ours.eval()(_images()) - expected).abs().max() > 1e-5


def test_hf_vit_model_without_classifier(transformers):
    torch.manual_seed(0)
    reference = _randomise_norms(transformers.ViTModel(transformers.ViTConfig(**HF_SMALL))).eval()
    ours = load_hf_state_dict(VisionTransformer(num_classes=0, mlp_ratio=2.0, **SMALL), reference.state_dict()).eval()
    with torch.no_grad():
        output = reference(pixel_values=_images())
        torch.testing.assert_close(ours.forward_features(_images()), output.last_hidden_state, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours(_images()), output.last_hidden_state[:, 0], atol=1e-4, rtol=0)
    with pytest.raises(CheckpointMismatchError, match="num_classes=0"):
        load_hf_state_dict(VisionTransformer(num_classes=10, mlp_ratio=2.0, **SMALL), reference.state_dict())


def test_hf_checkpoint_given_to_the_timm_loader_says_so(hf_classifier):
    with pytest.raises(CheckpointMismatchError, match="use load_hf_state_dict"):
        load_timm_state_dict(VisionTransformer(num_classes=10, **SMALL), hf_classifier.state_dict())


def test_unknown_hf_keys_are_named():
    with pytest.raises(CheckpointMismatchError, match="deit.encoder.layer.0.foo"):
        pretrained.convert_hf_state_dict({"deit.encoder.layer.0.foo.weight": torch.zeros(1)})


# -- mismatched and broken checkpoints --------------------------------------------------------------
def test_mismatched_checkpoint_names_missing_unexpected_and_shapes():
    source = VisionTransformer(num_classes=10, **{**SMALL, "depth": 3}).state_dict()
    source["extra.weight"] = torch.zeros(2)
    target = VisionTransformer(num_classes=5, **SMALL)
    with pytest.raises(CheckpointMismatchError) as info:
        load_timm_state_dict(target, source)
    message = str(info.value)
    assert "unexpected keys (13): blocks.2.* (12 tensors), extra.weight" in message
    assert "head.weight: checkpoint (10, 48) vs model (5, 48)" in message
    missing = VisionTransformer(num_classes=10, **SMALL).state_dict()
    del missing["norm.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): norm.weight"):
        load_timm_state_dict(VisionTransformer(num_classes=10, **SMALL), missing)


def test_skip_head_keeps_the_new_head():
    source = VisionTransformer(num_classes=10, **SMALL)
    target = VisionTransformer(num_classes=3, **SMALL)
    head_before = target.head.weight.clone()
    load_timm_state_dict(target, source.state_dict(), skip_head=True)
    assert torch.equal(target.head.weight, head_before)
    assert torch.equal(target.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)


def test_broken_files_get_a_clear_message(tmp_path):
    garbage = tmp_path / "vit.pt"
    garbage.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint.*download it again"):
        from_pretrained(garbage)
    truncated = tmp_path / "vit.safetensors"
    truncated.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        from_pretrained(truncated)
    whole_model = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 2), whole_model)  # a pickled module, refused by weights_only=True
    with pytest.raises(ValueError, match="weights_only=True"):
        from_pretrained(whole_model)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        from_pretrained(tmp_path / "missing.pt")


# -- from_pretrained ---------------------------------------------------------------------------------
def test_from_pretrained_local_pt_infers_the_architecture(tmp_path):
    source = _randomise_norms(VisionTransformer(num_classes=7, mlp_ratio=2.0, **SMALL)).eval()
    path = tmp_path / "my_vit.pt"
    torch.save(source.state_dict(), path)
    with pytest.warns(UserWarning, match="pass num_heads="):
        from_pretrained(path)
    model = from_pretrained(path, num_heads=4)
    assert (model.num_classes, len(model.blocks), model.patch_embed.patch_size) == (7, 2, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(_images()), source(_images()), atol=1e-6, rtol=0)
    resized = from_pretrained(path, img_size=48, num_classes=3, num_heads=4)
    assert resized(_images(size=48)).shape == (3, 3)
    assert resized.pretrained_cfg["input_size"] == (3, 48, 48)


def test_from_pretrained_hf_directory_uses_its_config(tmp_path, hf_classifier):
    pytest.importorskip("safetensors")
    hf_classifier.save_pretrained(tmp_path)
    heads = hf_classifier.config.num_attention_heads
    model = from_pretrained(tmp_path)
    assert model.blocks[0].attn.num_heads == heads
    assert len(model.class_names) == 10
    with torch.no_grad():
        expected = hf_classifier(pixel_values=_images()).logits
        torch.testing.assert_close(model(_images()), expected, atol=1e-4, rtol=0)


def test_from_pretrained_by_name_uses_the_local_weights_dir(tmp_path, monkeypatch, hf_classifier):
    pytest.importorskip("safetensors")
    monkeypatch.setenv("VIT_LESSONS_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(pretrained.hub, "_network_available", lambda *a, **k: pytest.fail("must not touch the network"))
    hf_classifier.save_pretrained(tmp_path / "someone--tiny-vit")  # where a Hub repo id is looked up first
    model = from_pretrained("someone/tiny-vit")
    with torch.no_grad():
        expected = hf_classifier(pixel_values=_images()).logits
        torch.testing.assert_close(model(_images()), expected, atol=1e-4, rtol=0)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No weights anywhere (this machine's own caches may hold real ones) and the default Hub, huggingface.co,
    whatever HF_ENDPOINT this shell has. Returns the weights folder."""
    monkeypatch.setenv("VIT_LESSONS_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    if "huggingface_hub.constants" in sys.modules:  # it read HF_ENDPOINT at import
        monkeypatch.setattr(sys.modules["huggingface_hub.constants"], "ENDPOINT", "https://huggingface.co")
    return tmp_path / "weights"


def _assert_offline_message(error):
    message = str(error)
    url = "https://huggingface.co/timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k/resolve/main/model.safetensors"
    assert url in message
    assert "vit_tiny_patch16_224.safetensors" in message and "put it at" in message


def test_offline_mode_fails_fast_with_what_to_download(empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("offline mode must not connect"))
    with pytest.raises(OfflineError) as info:
        from_pretrained("vit_tiny_patch16_224")
    _assert_offline_message(info.value)
    assert f"put it at {empty_caches / 'vit_tiny_patch16_224.safetensors'}" in str(info.value)


def test_unreachable_network_fails_fast(empty_caches, monkeypatch):
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIT_LESSONS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)

    def refused(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refused)
    with pytest.raises(OfflineError) as info:
        from_pretrained("vit_tiny_patch16_224")
    _assert_offline_message(info.value)

    def hangs(*args, **kwargs):  # a DNS lookup that does not answer in time
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hangs)
    start = time.perf_counter()
    assert pretrained.hub._network_available(timeout=0.3) is False
    assert time.perf_counter() - start < 2


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="vit_base_patch16_224"):
        from_pretrained("vit_bse_patch16_224")


# -- predict -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cat_jpeg(tmp_path_factory):
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("images") / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path)
    return path


def test_imagenet_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby" and names[999] == "toilet tissue"


def test_predict_on_a_real_image_file(cat_jpeg):
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=1000).eval()
    results = predict(model, [cat_jpeg, str(cat_jpeg)], top_k=5)
    assert len(results) == 2 and len(results[0]) == 5
    probabilities = [p for _, p in results[0]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    # Independently preprocessed: resize the short side to 32 / 0.9, centre-crop 32, normalise with 0.5.
    transform = transforms.Compose(
        [
            transforms.Resize(35, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(32),
            transforms.ToTensor(),
            transforms.Normalize((0.5,) * 3, (0.5,) * 3),
        ]
    )
    with torch.no_grad():
        expected = model(transform(Image.open(cat_jpeg).convert("RGB"))[None]).softmax(-1)[0]
    top = expected.topk(5)
    names = imagenet_class_names()
    assert [label for label, _ in results[0]] == [names[i] for i in top.indices.tolist()]
    assert probabilities == pytest.approx(top.values.tolist(), abs=1e-6)


def test_predict_bad_input(cat_jpeg, tmp_path):
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3)
    with pytest.raises(ValueError, match="top_k must be an int between 1 and the number of classes \\(3\\)"):
        predict(model, cat_jpeg, top_k=5)
    with pytest.raises(ValueError, match="2 class names for a model with 3 classes"):
        predict(model, cat_jpeg, top_k=1, class_names=["a", "b"])
    with pytest.raises(FileNotFoundError, match="image 0: no file"):
        predict(model, tmp_path / "nope.jpg", top_k=1)
    labels = [label for label, _ in predict(model, cat_jpeg, top_k=3, class_names=["a", "b", "c"])[0]]
    assert sorted(labels) == ["a", "b", "c"]


# -- fine-tuning helpers --------------------------------------------------------------------------------
def test_layer_decay_groups_cover_every_parameter_once_with_decaying_rates():
    model = VisionTransformer(num_classes=10, **SMALL)
    groups = layer_decay_param_groups(model, lr=1.0, decay=0.5)
    ids = [id(p) for group in groups for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    rate = {group["layer"]: group["lr"] for group in groups}
    assert rate == {0: 0.125, 1: 0.25, 2: 0.5, 3: 1.0}  # depth 2: embeddings, block 0, block 1, head
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(model.cls_token) in no_decay and id(model.head.bias) in no_decay and id(model.head.weight) not in no_decay
