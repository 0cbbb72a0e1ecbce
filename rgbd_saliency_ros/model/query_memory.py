"""Query-driven temporal memory (QTM): learned queries that turn into SAM2 prompts and carry a
stream's memory from frame to frame as a small tensor, the state
``(B, num_video_queries, query_dim)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SamDaqConfig


class QueryProjection(nn.Module):
    """(..., query_dim) queries -> (..., 256): LayerNorm, then a 3-layer MLP with ReLU between."""

    def __init__(self, query_dim: int, out_dim: int = 256) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(query_dim)
        self.layers = nn.ModuleList(
            [
                nn.Linear(query_dim, query_dim),
                nn.Linear(query_dim, query_dim),
                nn.Linear(query_dim, out_dim),
            ]
        )

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        x = self.norm(queries)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class BareAttention(nn.Module):
    """Multi-head attention with q, k, v projections only: no output projection, residual or norm.

    ``forward(queries (B, Lq, D), context (B, Lk, D)) -> (B, Lq, D)``.
    """

    def __init__(self, num_heads: int, dim: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, lq, d = queries.shape
        h = self.num_heads

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, h, L, D/h)
            return x.view(b, x.shape[1], h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.q(queries)), heads(self.k(context)), heads(self.v(context))
        )
        return out.transpose(1, 2).reshape(b, lq, d)


class QueryTemporalMemory(nn.Module):
    """Frame and video queries: ``prompt`` reads a frame, ``update`` writes its mask into the
    state."""

    def __init__(self, config: SamDaqConfig, embed_dim: int = 256, memory_dim: int = 64) -> None:
        super().__init__()
        qd = config.query_dim
        self.frame_queries = nn.Embedding(config.num_frame_queries, qd)
        self.frame_query_mlp = QueryProjection(qd, embed_dim)
        self.frame_maps_proj = nn.Conv2d(config.num_frame_queries, embed_dim, 1)
        self.video_queries = nn.Embedding(config.num_video_queries, qd)
        self.video_query_mlp = QueryProjection(qd, embed_dim)
        self.read_attention = BareAttention(4, embed_dim)
        self.prompt_proj = nn.Linear(config.embed_size**2, embed_dim)
        self.memory_proj = nn.Sequential(
            nn.Linear(memory_dim, qd), nn.LayerNorm(qd), nn.GELU(), nn.Linear(qd, qd)
        )
        self.update_cross_attention = BareAttention(8, qd)
        self.update_self_attention = BareAttention(8, qd)
        self.update_ffn = nn.Sequential(nn.Linear(qd, qd), nn.LayerNorm(qd), nn.GELU())
        self.state_keep = config.state_keep

    def initial_state(self, batch: int) -> torch.Tensor:
        """(batch, num_video_queries, query_dim): the learned video queries, one copy per
        stream."""
        return self.video_queries.weight.unsqueeze(0).expand(batch, -1, -1).clone()

    @torch.no_grad()
    def state_norm_bound(self) -> float:
        """The largest L2 norm any one video query (a row of the state) can reach, from the
        update's structure: ``state_keep * q + GELU(LayerNorm(x))``.

        LayerNorm's output has norm at most ``max|weight| * sqrt(D) + |bias|`` and GELU never
        grows a value's magnitude, so each update adds at most that (U); from a start of norm n0 a
        query stays within ``max(n0, U / (1 - state_keep))`` however many frames follow. A finite
        state beyond it did not come from this model (a corrupted state or backend).
        """
        if self.state_keep >= 1.0:
            return float("inf")
        norm = self.update_ffn[1]
        update = float(norm.weight.abs().max()) * norm.normalized_shape[0] ** 0.5 + float(
            norm.bias.norm()
        )
        start = float(self.video_queries.weight.norm(dim=-1).max())
        return max(start, update / (1.0 - self.state_keep))

    def prompt(self, state: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """Sparse prompt tokens for SAM2's mask decoder.

        state: (B, Q, query_dim); embed: E, (B, 256, s, s). Returns (B, Q, 256).
        """
        frame_q = self.frame_query_mlp(
            self.frame_queries.weight
        )  # (Qf, 256), same for every stream
        frame_maps = torch.einsum("qc,bchw->bqhw", frame_q, embed)  # (B, Qf, s, s)
        frame_feat = (
            F.relu(self.frame_maps_proj(frame_maps)).flatten(2).transpose(1, 2)
        )  # (B, s*s, 256)
        video_q = self.read_attention(self.video_query_mlp(state), frame_feat)  # (B, Q, 256)
        video_maps = torch.einsum("bqc,bchw->bqhw", video_q, embed).flatten(2)  # (B, Q, s*s)
        return self.prompt_proj(video_maps)

    def update(self, state: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """The next state from this frame's memory features.

        state: (B, Q, query_dim); memory: SAM2 memory-encoder output, (B, 64, s, s).
        Returns (B, Q, query_dim).
        """
        mem = self.memory_proj(memory.flatten(2).transpose(1, 2))  # (B, s*s, query_dim)
        q = self.update_cross_attention(state, mem)
        q = self.update_self_attention(q, q)
        return self.state_keep * state + self.update_ffn(q)
