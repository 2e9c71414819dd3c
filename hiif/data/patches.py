"""Training patches, the official way (LIIF's ``sr-implicit-downsampled``):

scale ``s ~ U(scale_min, scale_max)``, an HR crop of ``round(48·s)`` px, its LR made by PIL bicubic
(antialiased) to 48×48, random flips/transpose, and ``queries`` random HR pixels (without
replacement) with their coordinates and the HR cell. HIIF's ``…-fast`` wrapper delivers the same
2304 samples arranged as a 48×48 grid, so one sampler serves the three methods.

Photos are decoded once and kept in memory as uint8; sampling a batch is a few small PIL resizes.
The sampler owns its RNG so that a checkpoint can restore it exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..imageio import IMAGE_SUFFIXES
from ..models.common import make_coord


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: training folder not found (build it with "
                                "`python -m hiif.data build-trainset {folder}`)")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"{folder}: no images found")
    return paths


def load_images(paths: Sequence[Path], min_side: int, progress: bool = True) -> list[np.ndarray]:
    """Decode every photo once to an RGB uint8 array; photos smaller than ``min_side`` are skipped."""
    try:
        from tqdm import tqdm
        iterator = tqdm(paths, desc="decoding photos", unit="img", disable=not progress)
    except ImportError:  # pragma: no cover
        iterator = paths
    images = []
    for path in iterator:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        if min(arr.shape[:2]) >= min_side:
            images.append(arr)
    if not images:
        raise ValueError(f"no training image has a side of at least {min_side} px")
    return images


class PatchSampler:
    def __init__(self, images: Sequence[np.ndarray], patch: int = 48, scale_min: float = 1.0,
                 scale_max: float = 4.0, queries: int = 2304, augment: bool = True, seed: int = 0):
        self.images = list(images)
        self.patch, self.scale_min, self.scale_max = patch, scale_min, scale_max
        self.queries, self.augment = queries, augment
        areas = np.array([min(im.shape[0] * im.shape[1], 4_000_000) for im in self.images], float)
        # big photos hold more distinct patches; cap so that a few wallpapers don't dominate
        self.weights = areas / areas.sum()
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int, step: int) -> None:
        """A stream of its own for a run that starts at ``step`` (a further cycle from weights):
        seeded like a fresh run, it would replay, patch for patch, what the first run saw first."""
        self.rng = np.random.default_rng([seed, step])

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def _one(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng = self.rng
        image = self.images[rng.choice(len(self.images), p=self.weights)]
        s = rng.uniform(self.scale_min, self.scale_max)
        size_hr = min(round(self.patch * s), min(image.shape[:2]))
        y0 = rng.integers(0, image.shape[0] - size_hr + 1)
        x0 = rng.integers(0, image.shape[1] - size_hr + 1)
        hr = image[y0:y0 + size_hr, x0:x0 + size_hr]
        if self.augment:
            flips = rng.random(3) < 0.5
            if flips[0]:
                hr = hr[:, ::-1]
            if flips[1]:
                hr = hr[::-1]
            if flips[2]:
                hr = hr.transpose(1, 0, 2)
        hr = np.ascontiguousarray(hr)
        lr = np.asarray(Image.fromarray(hr).resize((self.patch, self.patch), Image.BICUBIC))
        coord = make_coord((size_hr, size_hr)).numpy()
        pick = rng.choice(size_hr * size_hr, self.queries, replace=size_hr * size_hr < self.queries)
        rgb = hr.reshape(-1, 3)[pick]
        cell = np.array([2 / size_hr, 2 / size_hr], np.float32)
        return lr, coord[pick], rgb, cell

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        """``lr`` (B,3,48,48), ``coord`` (B,Q,2), ``cell`` (B,2), ``gt`` (B,Q,3), normalised to [-1,1]."""
        items = [self._one() for _ in range(batch)]
        lr = torch.from_numpy(np.stack([i[0] for i in items])).permute(0, 3, 1, 2).float() / 255
        gt = torch.from_numpy(np.stack([i[2] for i in items])).float() / 255
        return {"lr": (lr - 0.5) / 0.5, "coord": torch.from_numpy(np.stack([i[1] for i in items])),
                "cell": torch.from_numpy(np.stack([i[3] for i in items])), "gt": (gt - 0.5) / 0.5}
