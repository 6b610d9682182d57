"""Run under ``torchrun`` by tests/test_train.py: train the digits ViT (BatchNorm in its stem) with
drop-path and write, per rank, which samples each DropPath kept at every training step, and the
buffers of the weights it evaluated (JSON per rank)."""

import json
import sys
from pathlib import Path

from vit_lessons.blocks import DropPath
from vit_lessons.train import build_model, get_config, train

out, stop_after, resume = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "resumed"
config = get_config("digits", epochs=2, per_class_train=16, per_class_test=4, batch_size=16, seed=3)
config.model_kwargs = {**config.model_kwargs, "drop_path_rate": 0.5}
masks = []


def record(module, inputs, output):
    if module.training:
        kept = (output.flatten(1) != 0).any(1)  # (B,): was this sample's branch kept?
        masks.append(kept.int().tolist())


def factory(config):
    model = build_model(config)
    for module in model.modules():
        if isinstance(module, DropPath):
            module.register_forward_hook(record)
    return model


_, trainer = train(config, out=out, device="cpu", progress=False, log=None, stop_after=stop_after, resume=resume,
                   model_factory=factory, return_trainer=True)  # fmt: skip
buffers = [buffer.double().sum().item() for buffer in trainer.eval_model.buffers()]
mode = "resumed" if resume else "first"
(out / f"masks_rank{trainer.dist.rank}_{mode}.json").write_text(json.dumps(masks))
(out / f"buffers_rank{trainer.dist.rank}_{mode}.json").write_text(json.dumps(buffers))
