"""The convolutional networks the course measures its ViTs against, and DeiT's teacher (lesson 10).

- :class:`ResNet9`: the compact residual network of David Page's "How to train your ResNet"
  (DAWNBench, 2018) — a 3×3 convolution, then three stages of convolution + max-pool, two of
  them with a residual pair of convolutions, global max-pooling and a linear head. At widths
  (48, 96, 192, 256) it has 2.0M parameters and is the course's teacher ``cifar10_cnn``.
- :func:`resnet18_cifar`: torchvision's ResNet-18 with the CIFAR stem (11.2M parameters).

Both carry the inductive biases a ViT lacks — locality and translation equivariance — which is
what lets them learn CIFAR-10 quickly from 50,000 images.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ResNet9", "resnet18_cifar", "CNN_MODELS"]


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 convolution (same size), BatchNorm, ReLU: (B, C_in, H, W) → (B, C_out, H, W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """x + f(x) with f two :func:`conv_bn` layers of the same width: (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """Page's ResNet-9 for 32×32 images; ``widths`` are the prep layer's and the three stages' channels."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (48, 96, 192, 256), in_chans: int = 3):
        super().__init__()
        if len(widths) != 4 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be 4 positive ints (prep, stage 1, 2, 3), got {widths!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        prep, c1, c2, c3 = widths
        self.num_classes = num_classes
        self.features = nn.Sequential(
            conv_bn(in_chans, prep),  # (B, prep, 32, 32)
            conv_bn(prep, c1), nn.MaxPool2d(2), Residual(c1),  # (B, c1, 16, 16)
            conv_bn(c1, c2), nn.MaxPool2d(2),  # (B, c2, 8, 8)
            conv_bn(c2, c3), nn.MaxPool2d(2), Residual(c3),  # (B, c3, 4, 4)
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),  # (B, c3)
        )  # fmt: skip
        self.head = nn.Linear(c3, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        return self.head(self.features(images))  # (B, num_classes)


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with a CIFAR stem: a 3×3 stride-1 first convolution, no max-pool,
    so a 32×32 image keeps a 32×32 map in the first stage (the ImageNet stem would shrink it to 8×8)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.num_classes = num_classes
    return model


# name -> (builder, default keyword arguments), for vit_lessons.create_model
CNN_MODELS: dict[str, tuple] = {
    "resnet9_cifar": (ResNet9, {}),
}
