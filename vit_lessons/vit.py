"""The Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

    z0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos        (Eq. 1)
    z_l = EncoderBlock(z_{l-1}),  l = 1..L                 (Eq. 2-3)
    y  = head(LN(z_L^0))                                   (Eq. 4)

Parameter names and shapes are those of timm's ``VisionTransformer`` (``patch_embed.proj``,
``cls_token``, ``pos_embed``, ``blocks.N.attn.qkv``, ``norm``, ``head``), so timm state dicts load
with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import LAYER_NORM_EPS, EncoderBlock
from .patches import ConvStemEmbedding, PatchEmbedding
from .position import learned_position_embedding, resample_position_embedding, sinusoidal_position_encoding_2d

__all__ = ["VisionTransformer", "MODEL_CONFIGS"]

POOLS = ("token", "avg")
POS_EMBEDS = ("learn", "sincos", "none")
STEMS = ("patch", "conv")


class VisionTransformer(nn.Module):
    """ViT classifier: (B, C, H, W) → (B, num_classes).

    Args beyond the paper's hyper-parameters:
        global_pool: ``"token"`` (class token, the paper) or ``"avg"`` (mean of the patch tokens;
            then the final LayerNorm is ``fc_norm``, applied after pooling, as in timm).
        class_token: keep a class token (needed for ``global_pool="token"``).
        pos_embed: ``"learn"`` (a parameter, the paper), ``"sincos"`` (fixed 2-D sinusoidal
            buffer, not in the state dict) or ``"none"`` (no position information at all).
        stem: ``"patch"`` (the paper's patch projection) or ``"conv"`` (a hybrid ViT: stride-2
            convolutions, see :class:`~vit_lessons.patches.ConvStemEmbedding`; ``stem_channels``
            sets their widths and so the token size 2^len(stem_channels); ``stem_strides`` (1 or 2
            each, default all 2) adds stride-1 convolutions).
    """

    def __init__(
        self,
        img_size=224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        global_pool: str = "token",
        class_token: bool = True,
        pos_embed: str = "learn",
        stem: str = "patch",
        stem_channels: tuple[int, ...] = (32, 64, 128),
        stem_strides: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if global_pool not in POOLS:
            raise ValueError(f"global_pool must be one of {POOLS}, got {global_pool!r}")
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed must be one of {POS_EMBEDS}, got {pos_embed!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True; use global_pool='avg' without a class token")
        for name, value in (("num_classes", num_classes), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.pos_embed_type = pos_embed

        if stem == "patch":
            self.patch_embed = PatchEmbedding(img_size, patch_size, in_chans, embed_dim)
        else:
            self.patch_embed = ConvStemEmbedding(img_size, in_chans, embed_dim, tuple(stem_channels), stem_strides)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        num_positions = num_patches + self.num_prefix_tokens
        if pos_embed == "learn":
            self.pos_embed = learned_position_embedding(num_positions, embed_dim)
        elif pos_embed == "sincos":
            grid = sinusoidal_position_encoding_2d(*self.patch_embed.grid_size, embed_dim)  # (N, D)
            prefix = torch.zeros(self.num_prefix_tokens, embed_dim)  # the class token has no position
            self.register_buffer("pos_embed", torch.cat([prefix, grid]).unsqueeze(0), persistent=False)
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(drop_rate)

        drop_path_rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # deeper, more dropped
        self.blocks = nn.Sequential(
            *[
                EncoderBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate)
                for rate in drop_path_rates
            ]
        )
        use_fc_norm = global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def set_img_size(self, img_size) -> None:
        """Run at a new resolution: the patch grid changes, learned position embeddings are
        resampled (bicubic, prefix tokens kept; see ``resample_position_embedding``)."""
        height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        patch = self.patch_embed.patch_size
        if height % patch or width % patch:
            raise ValueError(
                f"image size {height}x{width} is not divisible by patch size {patch}; "
                f"use img_size={max(patch, height // patch * patch)}"
            )
        old_grid = self.patch_embed.grid_size
        new_grid = (height // patch, width // patch)
        self.patch_embed.img_size = (height, width)
        self.patch_embed.grid_size = new_grid
        self.patch_embed.num_patches = new_grid[0] * new_grid[1]
        if self.pos_embed_type == "learn":
            resampled = resample_position_embedding(
                self.pos_embed.data, new_grid, self.num_prefix_tokens, old_grid=old_grid
            )
            self.pos_embed = nn.Parameter(resampled)
        elif self.pos_embed_type == "sincos":
            grid = sinusoidal_position_encoding_2d(*new_grid, self.embed_dim).to(self.pos_embed)
            prefix = self.pos_embed[0, : self.num_prefix_tokens]
            self.pos_embed = torch.cat([prefix, grid]).unsqueeze(0)

    # -- forward, in the order of the paper's equations ------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Eq. 1: (B, C, H, W) → (B, prefix + N, D), class token prepended, positions added."""
        tokens = self.patch_embed(images)  # (B, N, D)
        if self.cls_token is not None:
            cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
            tokens = torch.cat([cls, tokens], dim=1)  # (B, 1 + N, D)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed
        return self.pos_drop(tokens)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Eq. 1-3 and the final norm: (B, C, H, W) → (B, prefix + N, D)."""
        tokens = self.embed(images)
        tokens = self.blocks(tokens)  # (B, prefix + N, D)
        return self.norm(tokens)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, prefix + N, D) → (B, D): the class token, or the mean of the patch tokens."""
        if self.global_pool == "avg":
            return tokens[:, self.num_prefix_tokens :].mean(dim=1)
        return tokens[:, 0]

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Eq. 4: pool, norm (avg pooling only), head. (B, prefix + N, D) → (B, num_classes)."""
        pooled = self.head_drop(self.fc_norm(self.pool(tokens)))  # (B, D)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


def _init_weights(module: nn.Module) -> None:
    """N(0, 0.02²) truncated at ±2σ for linear layers, zero biases; LayerNorm to identity."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# Named configurations. The ImageNet ones are those of the paper's Table 1 (+ DeiT's Ti and S) and
# timm; the small ones are the course's own for CIFAR-10 (32 px) and the 8×8 digits.
MODEL_CONFIGS: dict[str, dict] = {
    "vit_tiny_patch16_224": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_base_patch32_224": dict(patch_size=32, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    # timm's ViT-H/14 is the ImageNet-21k feature extractor: no head (num_classes=0). With a
    # 1000-class head it has 632,045,800 parameters, the paper's "632M".
    "vit_huge_patch14_224": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16, num_classes=0),
    # The "~2.5M parameter" CIFAR-10 model of a popular tutorial: it has 546,186 parameters.
    "vit_cifar_patch4_32": dict(
        img_size=32, patch_size=4, num_classes=10, embed_dim=128, depth=4, num_heads=8, mlp_ratio=2.0
    ),
    # A 6-layer CIFAR-10 ViT (64 tokens of 4×4 pixels), the base of the training recipes.
    "vit_cifar_small_patch4_32": dict(
        img_size=32, patch_size=4, num_classes=10, embed_dim=192, depth=6, num_heads=3, mlp_ratio=2.0
    ),
    # sklearn's 8×8 digits: one channel, 2×2 patches, 16 tokens. Trains in seconds on a CPU.
    "vit_digits_patch2_8": dict(
        img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0
    ),
}
