"""RDN encoder (Zhang et al. 2018) without its upsampler, as LIIF/LTE/HIIF use it."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from ..common import conv_radius
from ..registry import register

# RDNconfig -> (number of RDBs D, conv layers per RDB C, growth rate G)
RDN_CONFIGS = {"A": (20, 6, 32), "B": (16, 8, 64)}


class DenseConv(nn.Module):
    """One densely connected layer: appends G new channels to its input."""

    def __init__(self, in_channels: int, growth: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, growth, kernel_size, padding=(kernel_size - 1) // 2), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv(x)), 1)


class ResidualDenseBlock(nn.Module):
    def __init__(self, g0: int, growth: int, n_layers: int, kernel_size: int = 3):
        super().__init__()
        self.convs = nn.Sequential(
            *[DenseConv(g0 + i * growth, growth, kernel_size) for i in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1)  # local feature fusion

    def forward(self, x: Tensor) -> Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    def __init__(self, G0: int = 64, RDNkSize: int = 3, RDNconfig: str = "B", scale: int = 2,
                 no_upsampling: bool = True, n_colors: int = 3):
        super().__init__()
        if not no_upsampling:
            raise ValueError("only the encoder form of RDN (no_upsampling: true) is supported")
        if RDNconfig not in RDN_CONFIGS:
            raise ValueError(f"RDNconfig must be one of {sorted(RDN_CONFIGS)}")
        d, c, g = RDN_CONFIGS[RDNconfig]
        pad = (RDNkSize - 1) // 2
        self.SFENet1 = nn.Conv2d(n_colors, G0, RDNkSize, padding=pad)
        self.SFENet2 = nn.Conv2d(G0, G0, RDNkSize, padding=pad)
        self.RDBs = nn.ModuleList([ResidualDenseBlock(G0, g, c, RDNkSize) for _ in range(d)])
        self.GFF = nn.Sequential(nn.Conv2d(d * G0, G0, 1), nn.Conv2d(G0, G0, RDNkSize, padding=pad))
        self.out_dim = G0

    @property
    def receptive_radius(self) -> int:
        """Context (input pixels on each side) that makes a tile's inner features exact."""
        return conv_radius(self)

    def forward(self, x: Tensor) -> Tensor:
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + shallow


@register("rdn")
def rdn(G0: int = 64, RDNkSize: int = 3, RDNconfig: str = "B", scale: int = 2,
        no_upsampling: bool = False, n_colors: int = 3) -> RDN:
    return RDN(G0, RDNkSize, RDNconfig, scale, no_upsampling, n_colors)
