"""SAM (v1)'s mask decoder: a two-way transformer between prompt tokens and the image embedding.

    decoder = SamMaskDecoder()
    low_res, iou = decoder(embedding, dense_pe, sparse, dense, multimask=True)
    # embedding (1, 256, 64, 64), sparse (P, N, 256) -> (P, 3, 256, 256) logits, (P, 3)

EfficientViT-SAM keeps this decoder unchanged (Apache-2.0, facebookresearch/segment-anything).
sam2's ``MaskDecoder`` has the same weights but is not used for it: it computes attention with
``scaled_dot_product_attention`` (6.8e-5 from the reference on the parity fixture, too little
margin under 1e-4) and adds SAM2-only heads. The attention here is the explicit
softmax(q k^T / sqrt(d)) v, and its LayerNorms use eps 1e-6, as EfficientViT-SAM's
``set_norm_eps`` leaves them. Module names follow the checkpoints' keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .efficientvit_backbone import EMBED_DIM, NORM_EPS, LayerNorm2d

MASK_OUTPUTS = 3  # multimask outputs; token 0 is the single-mask output


class Attention(nn.Module):
    """Multi-head attention whose q, k, v are projected to ``dim / downsample`` channels."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)  # (B, h, N, c/h)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, dim), k and v (B, Nk, dim) -> (B, Nq, dim)."""
        q, k, v = (
            self._split(self.q_proj(q)),
            self._split(self.k_proj(k)),
            self._split(self.v_proj(v)),
        )
        weights = torch.softmax((q @ k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1]), dim=-1)
        out = (weights @ v).transpose(1, 2)  # (B, Nq, h, c/h)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


class MlpBlock(nn.Module):
    """Linear, ReLU, Linear: the transformer's feed-forward."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Tokens attend to themselves and to the image; then the image attends to the tokens."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first  # the first block's self-attention sees the tokens without their PE
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.mlp = MlpBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.norm4 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample=2)

    def forward(self, tokens, image, token_pe, image_pe):
        """tokens (B, N, dim), image (B, HW, dim) and their PEs -> new (tokens, image)."""
        if self.first:
            tokens = self.self_attn(tokens, tokens, tokens)
        else:
            q = tokens + token_pe
            tokens = tokens + self.self_attn(q, q, tokens)
        tokens = self.norm1(tokens)
        k = image + image_pe
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(tokens + token_pe, k, image))
        tokens = self.norm3(tokens + self.mlp(tokens))
        k = image + image_pe
        image = self.norm4(image + self.cross_attn_image_to_token(k, tokens + token_pe, tokens))
        return tokens, image


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks and a last token-to-image attention."""

    def __init__(self, depth: int = 2, dim: int = EMBED_DIM, heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim, eps=NORM_EPS)

    def forward(self, image, image_pe, tokens):
        """image and image_pe (B, dim, h, w), tokens (B, N, dim) -> (tokens, image (B, hw,
        dim))."""
        image = image.flatten(2).permute(0, 2, 1)
        image_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, image = layer(queries, image, tokens, image_pe)
        out = self.final_attn_token_to_image(queries + tokens, image + image_pe, image)
        return self.norm_final_attn(queries + out), image


class Mlp(nn.Module):
    """``depth`` Linear layers with ReLU between them."""

    def __init__(self, cin: int, hidden: int, cout: int, depth: int) -> None:
        super().__init__()
        sizes = [cin] + [hidden] * (depth - 1) + [cout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class SamMaskDecoder(nn.Module):
    """Mask and IoU predictions from an image embedding and prompt embeddings."""

    def __init__(self, dim: int = EMBED_DIM) -> None:
        super().__init__()
        tokens = MASK_OUTPUTS + 1
        self.transformer = TwoWayTransformer(dim=dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            Mlp(dim, dim, dim // 8, 3) for _ in range(tokens)
        )
        self.iou_prediction_head = Mlp(dim, 256, tokens, 3)

    def forward(
        self,
        embedding: torch.Tensor,
        dense_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's masks for P prompts.

        Args:
            embedding: (1, 256, h, w) float32, the image embedding (repeated for each prompt).
            dense_pe: (1, 256, h, w), the prompt encoder's positional encoding of the grid.
            sparse: (P, N, 256), the prompts' point and box tokens.
            dense: (P or 1, 256, h, w), the mask-prompt embedding (``no_mask_embed`` if none).
            multimask: True: the three multimask outputs; False: the single-mask output.

        Returns:
            (P, M, 4h, 4w) mask logits and (P, M) predicted IoU, M = 3 or 1.
        """
        p = sparse.shape[0]
        head = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([head[None].expand(p, -1, -1), sparse], dim=1)
        image = torch.repeat_interleave(embedding, p, dim=0) + dense
        pe = torch.repeat_interleave(dense_pe, p, dim=0)
        b, c, h, w = image.shape
        hs, image = self.transformer(image, pe, tokens)
        mask_tokens = hs[:, 1 : 2 + MASK_OUTPUTS]
        upscaled = self.output_upscaling(image.transpose(1, 2).view(b, c, h, w))
        hyper = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou = self.iou_prediction_head(hs[:, 0])
        keep = slice(1, None) if multimask else slice(0, 1)
        return masks[:, keep], iou[:, keep]
