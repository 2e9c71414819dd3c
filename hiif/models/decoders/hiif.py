"""HIIF (Jiang et al., CVPR 2025): hierarchical implicit image function.

The four neighbour features are blended by area and concatenated; six MLP levels each see one more
bit of the query's position inside its LR cell (the hierarchical encoding); two linear-attention
blocks after level 0 mix all queries of one call.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from ..common import (bilinear_skip, ensemble_weights, gather_pixels, local_neighbours, scale_rel,
                      to_channels_last)
from ..registry import create_model, register
from .base import Features, ImplicitSR

N_LEVELS = 6


def hierarchical_bits(local_coord: Tensor, level: int) -> Tensor:
    """Bit ``level + 1`` of the binary expansion of the in-cell position (0 or 1 per axis)."""
    clipped = torch.clip(local_coord - 1e-9, 0.0, 1.0)
    return (clipped * 2 ** (level + 1)).floor() % 2


class LevelMLP(nn.Module):
    """LayerNorm → Linear → GELU → Linear, with a shortcut only when widths match (never, at the
    official sizes; kept for other configurations)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.fc2(self.act(self.fc1(self.norm(x))))
        return y + x if y.shape[-1] == x.shape[-1] else y


class LinearAttention(nn.Module):
    """Official ``qkv_attn``: per head, ``Q · mean_over_queries(LN(K)ᵀ LN(V)) + x`` then a residual
    two-layer MLP on the block input. ``kv`` (that mean) may be supplied: then queries no longer
    interact, which is how the engine renders any chunk as if the whole image were one call."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv_proj = nn.Linear(dim, dim * 3)
        self.kln = nn.LayerNorm(self.head_dim)
        self.vln = nn.LayerNorm(self.head_dim)
        self.proj1 = nn.Linear(dim, dim)
        self.proj2 = nn.Linear(dim, dim)
        self.act = nn.GELU()

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, q, _ = x.shape
        # channels are grouped per head as [q | k | v], 3 × head_dim each
        qkv = self.qkv_proj(x).reshape(b, q, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q_, k, v = qkv.chunk(3, dim=-1)
        return q_, self.kln(k), self.vln(v)

    def kv_sum(self, x: Tensor) -> Tensor:
        """Σ over the queries of LN(k)ᵀ LN(v): (B, heads, head_dim, head_dim)."""
        _, k, v = self._qkv(x)
        return torch.matmul(k.transpose(-2, -1), v)

    def forward(self, x: Tensor, kv: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self._qkv(x)
        if kv is None:
            kv = torch.matmul(k.transpose(-2, -1), v) / n
        mixed = torch.matmul(q, kv).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.proj2(self.act(self.proj1(mixed + x))) + x


@register("hiif")
class HIIF(ImplicitSR):
    method = "hiif"
    mixes_queries = True

    def __init__(self, encoder_spec: dict[str, Any], blocks: int = 16, hidden_dim: int = 256):
        super().__init__()
        self.encoder = create_model(encoder_spec)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.n_hi_layers = N_LEVELS
        self.fc_layers = nn.ModuleList([
            LevelMLP(hidden_dim * 4 + 2 + 2 if d == 0 else hidden_dim + 2,
                     3 if d == N_LEVELS - 1 else hidden_dim, 256)
            for d in range(N_LEVELS)
        ])
        self.conv0 = LinearAttention(hidden_dim, blocks)
        self.conv1 = LinearAttention(hidden_dim, blocks)

    @property
    def attention_blocks(self) -> list[LinearAttention]:
        return [self.conv0, self.conv1]

    def features_from(self, feat: Tensor, inp: Tensor) -> Features:
        return {"inp": inp, "feat": to_channels_last(self.freq(feat))}

    def level0(self, features: Features, coord: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
        """Level-0 MLP output (B, Q, C) and the in-cell position (B, Q, 2) of each query."""
        feat = features["feat"]
        h, w = feat.shape[1:3]
        neighbours = local_neighbours(coord, (h, w))
        rels = [scale_rel(nb.rel_coord, (h / 2, w / 2)) for nb in neighbours]
        parts = [gather_pixels(feat, nb.index) * wt.unsqueeze(-1)
                 for nb, wt in zip(neighbours, ensemble_weights(rels))]
        # position inside the cell, from the top-left neighbour (official formula, incl. its units)
        first = rels[0]
        positive = (first > 0).float()
        half_cell = torch.tensor([1 / h, 1 / w], device=coord.device)[None, None, :]
        local = positive * first + (1.0 - positive) * (half_cell - first)
        rel_cell = scale_rel(cell, (h, w))
        parts.append(rel_cell.unsqueeze(1).expand(-1, coord.shape[1], -1))
        parts.append(hierarchical_bits(local, 0))
        return self.fc_layers[0](torch.cat(parts, dim=-1)), local

    def attention_partial(self, features: Features, coord: Tensor, cell: Tensor,
                          kv_means: Sequence[Tensor]) -> Tensor:
        """Σ LN(k)ᵀLN(v) of attention block ``len(kv_means)`` over these queries, the earlier
        blocks using the given whole-image means."""
        x, _ = self.level0(features, coord, cell)
        for block, kv in zip(self.attention_blocks, kv_means):
            x = block(x, kv)
        return self.attention_blocks[len(kv_means)].kv_sum(x)

    def query_points(self, features: Features, coord: Tensor, cell: Tensor,
                     kv_means: Sequence[Tensor] | None = None) -> Tensor:
        """(B, Q, 2) queries, (B, 2) cell -> (B, Q, 3). Without ``kv_means`` the attention mixes
        exactly the queries of this call, as the official code does."""
        x, local = self.level0(features, coord, cell)
        for i, block in enumerate(self.attention_blocks):
            x = block(x, kv_means[i] if kv_means is not None else None)
        for level in range(1, N_LEVELS):
            x = self.fc_layers[level](torch.cat([x, hierarchical_bits(local, level)], dim=-1))
        return x + bilinear_skip(features["inp"], coord)

    def query(self, features: Features, coord: Tensor, cell: Tensor) -> Tensor:
        """Official call: ``coord`` (B, H, W, 2), ``cell`` (B, 2) -> (B, 3, H, W)."""
        b, h, w, _ = coord.shape
        out = self.query_points(features, coord.reshape(b, h * w, 2), cell)
        return out.permute(0, 2, 1).reshape(b, 3, h, w)

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(self.encode(inp), coord, cell)
