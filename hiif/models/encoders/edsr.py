"""EDSR(-baseline) encoder (Lim et al. 2017) without its upsampler, as LIIF/LTE/HIIF use it."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from ..common import conv_radius
from ..registry import register


class MeanShift(nn.Conv2d):
    """Frozen 1×1 colour shift. Kept only because official state_dicts carry it: the official
    forward has the mean subtraction commented out."""

    def __init__(self, rgb_range: float, sign: int = -1,
                 rgb_mean: tuple[float, ...] = (0.4488, 0.4371, 0.4040),
                 rgb_std: tuple[float, ...] = (1.0, 1.0, 1.0)):
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


def conv3x3(cin: int, cout: int, kernel_size: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, kernel_size: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats, kernel_size), nn.ReLU(True),
                                  conv3x3(n_feats, n_feats, kernel_size))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return res + x


class EDSR(nn.Module):
    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1,
                 scale: int = 2, no_upsampling: bool = True, rgb_range: float = 1,
                 n_colors: int = 3, kernel_size: int = 3):
        super().__init__()
        if not no_upsampling:
            raise ValueError("only the encoder form of EDSR (no_upsampling: true) is supported")
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(conv3x3(n_colors, n_feats, kernel_size))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, kernel_size, res_scale) for _ in range(n_resblocks)],
            conv3x3(n_feats, n_feats, kernel_size),
        )
        self.out_dim = n_feats

    @property
    def receptive_radius(self) -> int:
        """Context (input pixels on each side) that makes a tile's inner features exact."""
        return conv_radius(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return self.body(x) + x


@register("edsr-baseline")
def edsr_baseline(n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1, scale: int = 2,
                  no_upsampling: bool = False, rgb_range: float = 1, n_colors: int = 3) -> EDSR:
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range, n_colors)


@register("edsr")
def edsr(n_resblocks: int = 32, n_feats: int = 256, res_scale: float = 0.1, scale: int = 2,
         no_upsampling: bool = False, rgb_range: float = 1, n_colors: int = 3) -> EDSR:
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range, n_colors)
