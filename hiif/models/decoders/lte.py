"""LTE (Lee & Jin, CVPR 2022): a local Fourier basis (coefficient, frequency, phase) per neighbour,
decoded by an MLP, plus a bilinear skip of the input."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..common import (bilinear_skip, ensemble_weights, gather_pixels, local_neighbours, scale_rel,
                      to_channels_last)
from ..registry import create_model, register
from .base import Features, ImplicitSR


@register("lte")
class LTE(ImplicitSR):
    method = "lte"

    def __init__(self, encoder_spec: dict[str, Any], imnet_spec: dict[str, Any] | None = None,
                 hidden_dim: int = 256):
        super().__init__()
        self.encoder = create_model(encoder_spec)
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = create_model(imnet_spec, {"in_dim": hidden_dim})

    def features_from(self, feat: Tensor, inp: Tensor) -> Features:
        return {"inp": inp, "coef": to_channels_last(self.coef(feat)),
                "freq": to_channels_last(self.freq(feat))}

    def fourier_input(self, coef: Tensor, freq: Tensor, rel: Tensor, rel_cell: Tensor) -> Tensor:
        """coef ⊙ [cos, sin](π (freq · rel + phase(cell))) for gathered coef/freq (B, Q, 256)."""
        b, q = rel.shape[:2]
        # cos/sin of large phases need float32 even under autocast (bf16 keeps ~3 digits)
        coef, freq, rel_cell = coef.float(), freq.float(), rel_cell.float()
        freq = torch.stack(torch.split(freq, 2, dim=-1), dim=-1)  # (B, Q, 2, 128): (row, col) pairs
        freq = torch.sum(freq * rel.unsqueeze(-1), dim=-2)
        freq = freq + self.phase(rel_cell.reshape(b * q, -1)).view(b, q, -1).float()
        return coef * torch.cat((torch.cos(math.pi * freq), torch.sin(math.pi * freq)), dim=-1)

    def query_points(self, features: Features, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(features, coord, cell.unsqueeze(1).expand(-1, coord.shape[1], -1))

    def query(self, features: Features, coord: Tensor, cell: Tensor) -> Tensor:
        """Official call: ``coord`` (B, Q, 2), ``cell`` (B, Q, 2) -> (B, Q, 3)."""
        coef, freq, inp = features["coef"], features["freq"], features["inp"]
        h, w = coef.shape[1:3]
        # Official quirk: cell centres come from the *input* grid (differs with SwinIR's padding).
        neighbours = local_neighbours(coord, (h, w), centre_hw=tuple(inp.shape[-2:]))
        rel_cell = scale_rel(cell, (h, w))
        preds, rels = [], []
        for nb in neighbours:
            rel = scale_rel(nb.rel_coord, (h, w))
            x = self.fourier_input(gather_pixels(coef, nb.index), gather_pixels(freq, nb.index),
                                   rel, rel_cell)
            preds.append(self.imnet(x))
            rels.append(rel)
        out = 0
        for pred, weight in zip(preds, ensemble_weights(rels)):
            out = out + pred * weight.unsqueeze(-1)
        return out + bilinear_skip(inp, coord)

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(self.encode(inp), coord, cell)
