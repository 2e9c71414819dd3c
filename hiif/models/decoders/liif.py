"""LIIF (Chen et al., CVPR 2021): an MLP decodes the unfolded nearest feature, the relative
coordinate and the cell; four neighbours are blended by area."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..common import (ensemble_weights, gather_pixels, local_neighbours, scale_rel,
                      to_channels_last)
from ..registry import create_model, register
from .base import Features, ImplicitSR


@register("liif")
class LIIF(ImplicitSR):
    method = "liif"
    clamps_cell = False  # yinboc/liif test.py passes the cell unchanged at every scale

    def __init__(self, encoder_spec: dict[str, Any], imnet_spec: dict[str, Any] | None = None,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True):
        super().__init__()
        self.local_ensemble, self.feat_unfold, self.cell_decode = local_ensemble, feat_unfold, cell_decode
        self.encoder = create_model(encoder_spec)
        in_dim = self.encoder.out_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = create_model(imnet_spec, {"in_dim": in_dim}) if imnet_spec else None

    def features_from(self, feat: Tensor, inp: Tensor) -> Features:
        if self.feat_unfold:  # 3×3 neighbourhood per pixel, channel-major as F.unfold orders it
            b, c, h, w = feat.shape
            feat = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
        return {"inp": inp, "feat": to_channels_last(feat)}

    def query_points(self, features: Features, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(features, coord, cell.unsqueeze(1).expand(-1, coord.shape[1], -1))

    def query(self, features: Features, coord: Tensor, cell: Tensor | None) -> Tensor:
        """Official call: ``coord`` (B, Q, 2), ``cell`` (B, Q, 2) -> (B, Q, 3)."""
        feat = features["feat"]
        h, w = feat.shape[1:3]
        neighbours = local_neighbours(coord, (h, w), local_ensemble=self.local_ensemble)
        preds, rels = [], []
        for nb in neighbours:
            rel = scale_rel(nb.rel_coord, (h, w))
            parts = [gather_pixels(feat, nb.index), rel]
            if self.cell_decode:
                parts.append(scale_rel(cell, (h, w)))
            x = torch.cat(parts, dim=-1)
            preds.append(self.imnet(x) if self.imnet is not None else x)
            rels.append(rel)
        out = 0
        for pred, weight in zip(preds, ensemble_weights(rels)):
            out = out + pred * weight.unsqueeze(-1)
        return out

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(self.encode(inp), coord, cell)
