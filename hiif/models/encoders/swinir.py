"""SwinIR encoder (Liang et al. 2021) in the form LTE/HIIF use: no upsampler, a 180→64 conv +
LeakyReLU tail, input reflect-padded to window multiples and *not* cropped back."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..registry import register


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def to_windows(x: Tensor, ws: int) -> Tensor:
    """(B, H, W, C) -> (B·nW, ws·ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def from_windows(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """(B·nW, ws·ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


@lru_cache(maxsize=32)
def _shift_mask(h: int, w: int, ws: int, shift: int) -> Tensor:
    """(nW, ws², ws²) additive mask (0 / −100) keeping shifted windows from mixing regions."""
    region = torch.zeros((1, h, w, 1), device="cpu")  # never cache a meta/cuda tensor
    label = 0
    spans = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for hs in spans:
        for wsl in spans:
            region[:, hs, wsl, :] = label
            label += 1
    labels = to_windows(region, ws).squeeze(-1)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> Tensor:
    return _shift_mask(h, w, ws, shift).to(device)


def relative_position_index(ws: int) -> Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int, shift_size: int, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float):
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= window_size:  # window covers everything: no partition, no shift
            shift_size, window_size = 0, min(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))
        # The official code stores the mask of its training size as a buffer (it is in state_dicts).
        mask = _shift_mask(*input_resolution, window_size, shift_size).clone() if shift_size else None
        self.register_buffer("attn_mask", mask)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        if not shift:
            mask = None
        elif tuple(x_size) == tuple(self.input_resolution):
            mask = self.attn_mask
        else:
            mask = shift_mask(h, w, ws, shift, x.device)
        y = from_windows(self.attn(to_windows(y, ws), mask), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BlockGroup(nn.Module):
    def __init__(self, blocks: Sequence[SwinBlock]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        for block in self.blocks:
            x = block(x, x_size)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: a group of Swin blocks, a 3×3 conv, a skip."""

    def __init__(self, blocks: Sequence[SwinBlock], dim: int):
        super().__init__()
        self.residual_group = BlockGroup(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        y = self.residual_group(x, x_size)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, *x_size))
        return y.flatten(2).transpose(1, 2) + x


class PatchNorm(nn.Module):
    """Holds the LayerNorm SwinIR applies right after flattening (key ``patch_embed.norm``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class SwinIR(nn.Module):
    def __init__(self, img_size: int = 48, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 180, depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6), window_size: int = 8,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop_path_rate: float = 0.1,
                 num_feat: int = 64):
        super().__init__()
        if patch_size != 1:
            raise ValueError("SwinIR encoder supports patch_size 1 only")
        self.window_size = window_size
        self.out_dim = num_feat
        #: shifted windows pass information across the whole image: no finite exact tile context
        self.receptive_radius = None
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchNorm(embed_dim)
        rates = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
        resolution = (img_size, img_size)
        self.layers = nn.ModuleList()
        start = 0
        for depth, heads in zip(depths, num_heads):
            blocks = [
                SwinBlock(embed_dim, resolution, heads, window_size,
                          0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, rates[start + i])
                for i in range(depth)
            ]
            start += depth
            self.layers.append(RSTB(blocks, embed_dim))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                  nn.LeakyReLU(inplace=True))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def pad_to_window(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        return F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), "reflect")

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_first(self.pad_to_window(x))
        b, c, h, w = x.shape
        y = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            y = layer(y, (h, w))
        y = self.norm(y).transpose(1, 2).reshape(b, c, h, w)
        return self.conv_before_upsample(self.conv_after_body(y) + x)


@register("swinir")
def swinir(no_upsampling: bool = True, n_colors: int = 3, upsampler: str = "none",
           **kwargs) -> SwinIR:
    if not no_upsampling or upsampler != "none":
        raise ValueError("only the encoder form of SwinIR (no upsampler) is supported")
    kwargs.pop("upscale", None)
    kwargs.pop("img_range", None)
    if kwargs.pop("resi_connection", "1conv") != "1conv":
        raise ValueError("SwinIR encoder supports resi_connection '1conv' only")
    return SwinIR(in_chans=n_colors, **kwargs)
