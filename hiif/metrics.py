"""Image quality metrics with the official LIIF/LTE/HIIF conventions (value range 1)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: BT.601 luma weights as the official ``calc_psnr`` applies them to an RGB difference
Y_WEIGHTS = np.array([65.738, 129.057, 25.064]) / 256


def _as_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image.astype(np.float64) / 255 if image.dtype == np.uint8 else image.astype(np.float64)


def shave_border(image: np.ndarray, shave: int) -> np.ndarray:
    return image[shave:-shave, shave:-shave] if shave > 0 else image


def psnr(pred: np.ndarray, gt: np.ndarray, shave: int = 0, y_channel: bool = False) -> float:
    """PSNR of (H, W, 3) images (uint8, or float in [0, 1]). ``y_channel`` takes the luma of the
    difference (the official benchmark protocol); ``shave`` drops that many border pixels."""
    pred, gt = _as_float(pred), _as_float(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch {pred.shape} vs {gt.shape}")
    diff = pred - gt
    if y_channel:
        diff = (diff * Y_WEIGHTS).sum(axis=-1)
    diff = shave_border(diff, shave)
    mse = float(np.mean(diff ** 2))
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def benchmark_psnr(pred: np.ndarray, gt: np.ndarray, scale: float) -> float:
    """Set5/Set14/B100/Urban100 protocol: Y channel, ``scale`` px shaved."""
    return psnr(pred, gt, shave=math.ceil(scale - 1e-9), y_channel=True)


def div2k_psnr(pred: np.ndarray, gt: np.ndarray, scale: float) -> float:
    """DIV2K protocol: RGB, ``scale + 6`` px shaved."""
    return psnr(pred, gt, shave=math.ceil(scale - 1e-9) + 6, y_channel=False)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Luma in [0, 1] (BT.601, studio swing as in MATLAB's rgb2ycbcr) of an RGB image."""
    return 16 / 255 + (_as_float(image) * Y_WEIGHTS).sum(axis=-1)


def ssim(pred: np.ndarray, gt: np.ndarray, shave: int = 0) -> float:
    """SSIM (Wang et al. 2004; Gaussian window 11, σ 1.5) on the Y channel."""
    x = torch.from_numpy(shave_border(rgb_to_y(pred), shave))[None, None]
    y = torch.from_numpy(shave_border(rgb_to_y(gt), shave))[None, None]
    if min(x.shape[-2:]) < 11:
        return float("nan")
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]
    blur = lambda t: F.conv2d(t, window)  # noqa: E731  (valid region, as the reference code)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(value.mean())
