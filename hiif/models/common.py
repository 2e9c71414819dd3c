"""Pieces shared by the models: coordinates, the MLP, the 4-neighbour local ensemble of the implicit
decoders, and the receptive field of the convolutional encoders.

Conventions (identical to the official LIIF/LTE/HIIF code):
- coordinates live in [-1, 1], last dim ``(row, col)``; pixel ``i`` of an axis of size ``n`` has its
  centre at ``-1 + 1/n + 2i/n``;
- a cell is the size of one output pixel in those units, ``(2/H_out, 2/W_out)``;
- decoders keep feature maps channels-last, ``(B, h, w, C)``, so that sampling a query's nearest
  feature is a row gather instead of ``grid_sample``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .registry import register

# Offsets of the four neighbours, in the order of the official loops (vx outer, vy inner).
NEIGHBOUR_SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))
EPS_SHIFT = 1e-6


def pixel_centres(n: int, device: torch.device | str | None = None) -> Tensor:
    """Centres of ``n`` pixels spanning [-1, 1] (float32), with the official arithmetic."""
    r = 2 / (2 * n)
    return -1 + r + (2 * r) * torch.arange(n, device=device).float()


def make_coord(
    shape: Sequence[int], flatten: bool = True, device: torch.device | str | None = None
) -> Tensor:
    """Pixel-centre grid of ``shape`` (``(..., len(shape))``, ij order), flattened row-major."""
    seqs = [pixel_centres(n, device) for n in shape]
    grid = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return grid.view(-1, grid.shape[-1]) if flatten else grid


def nearest_index(coord: Tensor, size: int) -> Tensor:
    """Index of the pixel ``grid_sample(mode='nearest', align_corners=False)`` picks on one axis."""
    # grid_sample unnormalises with (x + 1) * size / 2 - 0.5 and rounds half to even.
    return torch.round((coord + 1) * (size / 2) - 0.5).clamp_(0, size - 1).long()


def gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table`` (B, N, C), ``index`` (B, Q) -> (B, Q, C)."""
    if table.shape[0] == 1:
        return table[0].index_select(0, index[0]).unsqueeze(0)
    offsets = torch.arange(table.shape[0], device=index.device).unsqueeze(1) * table.shape[1]
    flat = table.reshape(-1, table.shape[-1])
    return flat.index_select(0, (index + offsets).reshape(-1)).view(*index.shape, table.shape[-1])


def gather_pixels(feature_map: Tensor, index: Tensor) -> Tensor:
    """``feature_map`` channels-last (B, h, w, C), flat ``index`` (B, Q) -> (B, Q, C)."""
    b, h, w, c = feature_map.shape
    return gather_rows(feature_map.reshape(b, h * w, c), index)


@dataclass
class Neighbour:
    """One of the four LR feature cells around a query."""

    index: Tensor  # (B, Q) flat row-major index into the (h, w) feature map
    rel_coord: Tensor  # (B, Q, 2) query minus the cell centre, in [-1, 1] units (not yet scaled)


def local_neighbours(
    coord: Tensor,
    feat_hw: tuple[int, int],
    centre_hw: tuple[int, int] | None = None,
    local_ensemble: bool = True,
) -> list[Neighbour]:
    """The feature cells the official local ensemble samples for each query ``coord`` (B, Q, 2).

    ``centre_hw`` is the grid the cell centres are read from; it differs from ``feat_hw`` only for
    LTE, which builds that grid from the input size (a SwinIR encoder pads its features).
    """
    h, w = feat_hw
    ch, cw = centre_hw or feat_hw
    rows, cols = pixel_centres(ch, coord.device), pixel_centres(cw, coord.device)
    shifts, eps = (NEIGHBOUR_SHIFTS, EPS_SHIFT) if local_ensemble else (((0, 0),), 0)
    rx, ry = 2 / h / 2, 2 / w / 2
    out = []
    for vx, vy in shifts:
        shifted = coord.clone()
        shifted[..., 0] += vx * rx + eps
        shifted[..., 1] += vy * ry + eps
        shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
        iy, ix = nearest_index(shifted[..., 0], h), nearest_index(shifted[..., 1], w)
        if (ch, cw) == (h, w):
            cy, cx = iy, ix
        else:
            cy, cx = nearest_index(shifted[..., 0], ch), nearest_index(shifted[..., 1], cw)
        centre = torch.stack([rows[cy], cols[cx]], dim=-1)
        out.append(Neighbour(index=iy * w + ix, rel_coord=coord - centre))
    return out


def ensemble_weights(scaled_rel_coords: Sequence[Tensor]) -> list[Tensor]:
    """Bilinear-like weights (B, Q) of the neighbours: each gets the area opposite to it."""
    areas = [torch.abs(r[..., 0] * r[..., 1]) + 1e-9 for r in scaled_rel_coords]
    if len(areas) == 1:
        return [areas[0] / areas[0]]
    total = torch.stack(areas).sum(dim=0)
    return [areas[3] / total, areas[2] / total, areas[1] / total, areas[0] / total]


def scale_rel(rel: Tensor, factors: tuple[float, float]) -> Tensor:
    """Rescale a (…, 2) relative coordinate per axis (in place on a copy)."""
    rel = rel.clone()
    rel[..., 0] *= factors[0]
    rel[..., 1] *= factors[1]
    return rel


def bilinear_skip(inp: Tensor, coord: Tensor) -> Tensor:
    """Border-padded bilinear sample of the (normalised) input at ``coord`` (B, Q, 2) -> (B, Q, 3)."""
    sampled = torch.nn.functional.grid_sample(
        inp, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[:, :, 0, :].permute(0, 2, 1)


def conv_radius(module: nn.Module) -> int:
    """Input pixels on each side that can influence one output pixel of a network made of
    convolutions, residual sums and concatenations (EDSR, RDN): the sum of every conv's reach, an
    upper bound whatever the wiring. The engine's tiled encoding keeps that much context."""
    return sum((m.kernel_size[0] // 2) * m.dilation[0] for m in module.modules() if isinstance(m, nn.Conv2d))


def to_channels_last(feature_map: Tensor) -> Tensor:
    """(B, C, h, w) -> contiguous (B, h, w, C)."""
    return feature_map.permute(0, 2, 3, 1).contiguous()


@register("mlp")
class MLP(nn.Module):
    """LIIF's ``mlp``: Linear/ReLU stack (state_dict keys ``layers.0``, ``layers.2``, …)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_list: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for hidden in hidden_list:
            layers += [nn.Linear(last, hidden), nn.ReLU()]
            last = hidden
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*lead, -1)
