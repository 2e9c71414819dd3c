"""What every implicit decoder offers the engine, on top of the official ``forward``."""
from __future__ import annotations

from typing import Any

import torch.nn as nn
from torch import Tensor

Features = dict[str, Tensor]


class ImplicitSR(nn.Module):
    """An encoder plus an implicit decoder.

    Pure interface: ``encode(inp) -> features`` and ``query_points(features, coord, cell) -> rgb``
    keep no state between calls. ``encode`` is the encoder followed by ``features_from(feat, inp)``
    (what the decoder derives from the encoder's feature map), so that the engine can run the
    encoder tile by tile on large inputs. ``forward(inp, coord, cell)`` keeps each method's official call.

    ``coord`` (B, Q, 2) are query centres in [-1, 1] (row, col); ``cell`` (B, 2) is the output pixel
    size in the same units; results are (B, Q, 3) in the normalised space ((x - 0.5) / 0.5).
    """

    method: str = ""
    #: Queries of one call interact (HIIF's linear attention) unless their statistics are supplied.
    mixes_queries: bool = False
    #: Training scale range: beyond it the official test code enlarges the cell by scale / this.
    scale_max: float = 4.0
    #: Whether the official test code of this method applies that cell rule.
    clamps_cell: bool = True
    spec: dict[str, Any]

    encoder: nn.Module

    def encode(self, inp: Tensor) -> Features:
        return self.features_from(self.encoder(inp), inp)

    def features_from(self, feat: Tensor, inp: Tensor) -> Features:
        """The decoder's features from the encoder's map ``feat`` (B, C, h, w) of ``inp``."""
        raise NotImplementedError

    def query_points(self, features: Features, coord: Tensor, cell: Tensor) -> Tensor:
        raise NotImplementedError
