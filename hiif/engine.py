"""Arbitrary-scale inference: coordinates, chunking, feature caching, devices, precision.

``Upscaler(model).encode(image)`` runs the encoder once; ``render(encoded, scale, region)`` then
decodes any scale, or any rectangle of the output, from those cached features in bounded memory
(queries are decoded ``chunk`` at a time).

HIIF's linear attention averages statistics over all queries of one call, so a naive chunked
render would differ from the official one-call output. The engine instead accumulates those
statistics over the whole output grid first (one pass per attention block) and then decodes every
chunk with them: the result equals one unchunked call, whatever the chunk or region. When the
output grid exceeds ``stats_max_queries`` the statistics are estimated on a regular sub-grid of the
output (every k-th row and column), which stays within a small error (see benchmarks/RESULTS.md).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .imageio import ImageLike, InputImage, load_image, to_pil
from .models import ImplicitSR
from .models.common import pixel_centres
from .models.encoders.swinir import SwinIR

MAX_SCALE = 30.0
#: queries decoded per call: ~0.5 GB of activations on CPU for the widest decoder (LIIF)
DEFAULT_CHUNK = {"cpu": 16384, "cuda": 262144}
#: HIIF attention statistics are exact up to this many output pixels, estimated beyond it
STATS_MAX_QUERIES = 4_194_304
#: largest output ``upscale``/``render`` produce in one piece (pixels)
MAX_OUTPUT_PIXELS = 400_000_000

Scale = Union[float, tuple[float, float]]
Region = tuple[int, int, int, int]  # top, left, height, width in output pixels
Progress = Union[bool, Callable[[int, int], None], None]


def validate_scale(scale: object) -> tuple[float, float]:
    """``s`` or ``(sy, sx)``, each a finite number in [1, 30] -> ``(sy, sx)``; else ``ValueError``."""
    if isinstance(scale, (str, bytes)) or isinstance(scale, bool):
        raise ValueError(f"scale must be a number or a pair (sy, sx), got {scale!r}")
    if isinstance(scale, numbers.Real) or (isinstance(scale, np.ndarray) and scale.ndim == 0):
        values = [scale, scale]
    elif isinstance(scale, (tuple, list, np.ndarray)) and len(scale) == 2:
        values = list(scale)
    else:
        raise ValueError(f"scale must be a number or a pair (sy, sx), got {scale!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.number)):
            raise ValueError(f"scale must be a number or a pair (sy, sx), got {scale!r}")
        v = float(v)
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"scale must be finite, got {v}")
        if v < 1 or v > MAX_SCALE:
            raise ValueError(f"scale must be between 1 and {MAX_SCALE:g}, got {v:g}")
        out.append(v)
    return out[0], out[1]


def output_size(lr_size: tuple[int, int], scale: Scale) -> tuple[int, int]:
    sy, sx = validate_scale(scale)
    h, w = lr_size
    return max(1, round(h * sy)), max(1, round(w * sx))


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is for CUDA; use bf16 on CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def pad_symmetric(x: Tensor, height: int, width: int) -> Tensor:
    """Extend (B, C, h, w) to (height, width) by concatenating flipped copies (the official SwinIR
    test padding), repeating for inputs smaller than the pad."""
    while x.shape[-2] < height:
        x = torch.cat([x, x.flip(-2)], dim=-2)
    while x.shape[-1] < width:
        x = torch.cat([x, x.flip(-1)], dim=-1)
    return x[..., :height, :width]


@dataclass
class Encoded:
    """Encoder output for one image plus what rendering needs to know about it."""

    key: str
    image: InputImage
    features: dict[str, Tensor] | None  # None for bicubic
    frame: tuple[int, int]  # (h, w) the features cover: the input, padded for SwinIR

    @property
    def lr_size(self) -> tuple[int, int]:
        return self.image.size


class Upscaler:
    """One model on one device, with a small cache of encoded images and HIIF statistics."""

    def __init__(self, model: ImplicitSR | str = "hiif-edsr", device: str | torch.device | None = None,
                 chunk: int | None = None, precision: str = "fp32", cell_rule: str = "official",
                 cache_size: int = 4, stats_max_queries: int = STATS_MAX_QUERIES):
        self.device = resolve_device(device)
        if isinstance(model, str) and model != "bicubic":
            from .weights import load_model
            model = load_model(model, self.device)
        self.model = None if model == "bicubic" else model.to(self.device).eval()
        self.chunk = int(chunk or DEFAULT_CHUNK.get(self.device.type, DEFAULT_CHUNK["cpu"]))
        if self.chunk < 1:
            raise ValueError("chunk must be a positive number of queries")
        autocast_context(self.device, precision)  # validates
        self.precision = precision
        if cell_rule not in ("official", "unchanged"):
            raise ValueError("cell_rule must be 'official' or 'unchanged'")
        self.cell_rule = cell_rule
        self.cache_size = cache_size
        self.stats_max_queries = stats_max_queries
        self._encoded: OrderedDict[str, Encoded] = OrderedDict()
        self._stats: OrderedDict[tuple, list[Tensor]] = OrderedDict()

    # -- description ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self.model is None:
            return "bicubic"
        return str(getattr(self.model, "source", None) or getattr(self.model, "method", "model"))

    def describe(self) -> str:
        return f"{self.name} on {self.device.type}, {self.precision}"

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, image: ImageLike | InputImage) -> Encoded:
        """Run the encoder once per distinct image (cached by content)."""
        img = load_image(image)
        key = hashlib.sha1(img.rgb.tobytes() + str(img.rgb.shape).encode()).hexdigest()
        if key in self._encoded:
            self._encoded.move_to_end(key)
            return self._encoded[key]
        h, w = img.size
        features, frame = None, (h, w)
        if self.model is not None:
            inp = torch.from_numpy(img.rgb.copy()).to(self.device).permute(2, 0, 1).unsqueeze(0).float()
            inp = (inp / 255 - 0.5) / 0.5
            encoder = getattr(self.model, "encoder", None)
            if isinstance(encoder, SwinIR):  # pad to whole windows; queries map into the frame
                ws = encoder.window_size
                frame = (math.ceil(h / ws) * ws, math.ceil(w / ws) * ws)
                inp = pad_symmetric(inp, *frame)
            # The encoder runs once per image, in float32 even when the decoder uses autocast: its
            # features feed phases/frequencies where bf16 rounding is amplified.
            with torch.inference_mode():
                features = self.model.encode(inp)
        encoded = Encoded(key, img, features, frame)
        self._encoded[key] = encoded
        while len(self._encoded) > self.cache_size:
            self._encoded.popitem(last=False)
        return encoded

    # -- rendering -----------------------------------------------------------------------------
    def cell_for(self, encoded: Encoded, out_hw: tuple[int, int]) -> Tensor:
        """The cell passed to the decoder for this output size (method's official test rule)."""
        (h, w), (fh, fw), (H, W) = encoded.lr_size, encoded.frame, out_hw
        cell = torch.tensor([[2 / H * (h / fh), 2 / W * (w / fw)]], device=self.device)
        if self.cell_rule == "official" and getattr(self.model, "clamps_cell", False):
            scale_max = self.model.scale_max
            factor = torch.tensor([[max(H / h / scale_max, 1.0), max(W / w / scale_max, 1.0)]],
                                  device=self.device)
            cell = cell * factor
        return cell

    def _axis(self, n_out: int, n_lr: int, n_frame: int) -> Tensor:
        centres = pixel_centres(n_out, self.device)
        if n_frame != n_lr:  # express the original image's pixel centres in the padded frame
            centres = (centres + 1) * (n_lr / n_frame) - 1
        return centres

    def _coords(self, rows: Tensor, cols: Tensor, start: int, stop: int) -> Tensor:
        idx = torch.arange(start, stop, device=self.device)
        return torch.stack([rows[idx // cols.numel()], cols[idx % cols.numel()]], dim=-1).unsqueeze(0)

    def _attention_stats(self, encoded: Encoded, rows: Tensor, cols: Tensor, cell: Tensor,
                         tick: Callable[[], None]) -> list[Tensor]:
        """Whole-grid means of LN(k)ᵀLN(v) for each attention block (estimated on a sub-grid
        when the grid is larger than ``stats_max_queries``)."""
        n = rows.numel() * cols.numel()
        if n > self.stats_max_queries:
            stride = math.ceil(math.sqrt(n / self.stats_max_queries))
            rows, cols = rows[stride // 2::stride], cols[stride // 2::stride]
            n = rows.numel() * cols.numel()
        means: list[Tensor] = []
        for _ in self.model.attention_blocks:
            total = None
            for start in range(0, n, self.chunk):
                coord = self._coords(rows, cols, start, min(n, start + self.chunk))
                with autocast_context(self.device, self.precision):
                    part = self.model.attention_partial(encoded.features, coord, cell, means).float()
                total = part if total is None else total + part
                tick()
            means.append(total / n)
        return means

    def render(self, encoded: Encoded, scale: Scale, region: Region | None = None,
               progress: Progress = None, raw: bool = False) -> np.ndarray:
        """RGB uint8 (height, width, 3) of the whole output, or of ``region`` (top, left, h, w).
        ``raw=True`` returns the decoder's float32 output instead (normalised space, unclamped)."""
        H, W = output_size(encoded.lr_size, scale)
        top, left, rh, rw = region if region is not None else (0, 0, H, W)
        if rh < 1 or rw < 1 or top < 0 or left < 0 or top + rh > H or left + rw > W:
            raise ValueError(f"region {region} is outside the {W}×{H} output")
        if rh * rw > MAX_OUTPUT_PIXELS:
            raise ValueError(f"output of {rw}×{rh} = {rh * rw / 1e6:.0f} MP exceeds the limit of "
                             f"{MAX_OUTPUT_PIXELS / 1e6:.0f} MP; render a region instead")
        if self.model is None:
            if raw:
                raise ValueError("bicubic has no raw decoder output")
            return self._render_bicubic(encoded, (H, W), (top, left, rh, rw))

        (h, w), (fh, fw) = encoded.lr_size, encoded.frame
        rows_all, cols_all = self._axis(H, h, fh), self._axis(W, w, fw)
        rows, cols = rows_all[top:top + rh], cols_all[left:left + rw]
        cell = self.cell_for(encoded, (H, W))
        n = rh * rw
        n_chunks = math.ceil(n / self.chunk)
        one_call = n <= self.chunk and (rh, rw) == (H, W)
        needs_stats = getattr(self.model, "mixes_queries", False) and not one_call
        total_ticks = n_chunks
        if needs_stats:
            stats_n = min(H * W, self.stats_max_queries * 2)
            total_ticks += len(self.model.attention_blocks) * math.ceil(stats_n / self.chunk)
        bar, tick = _progress(progress, total_ticks)
        out = np.empty((n, 3), np.float32 if raw else np.uint8)
        try:
            with torch.inference_mode():
                kv_means = None
                if needs_stats:
                    key = (encoded.key, H, W, tuple(cell.flatten().tolist()), self.precision)
                    kv_means = self._stats.get(key)
                    if kv_means is None:
                        kv_means = self._attention_stats(encoded, rows_all, cols_all, cell, tick)
                        self._stats[key] = kv_means
                        while len(self._stats) > 4 * self.cache_size:
                            self._stats.popitem(last=False)
                for start in range(0, n, self.chunk):
                    stop = min(n, start + self.chunk)
                    coord = self._coords(rows, cols, start, stop)
                    with autocast_context(self.device, self.precision):
                        if kv_means is not None:
                            pred = self.model.query_points(encoded.features, coord, cell, kv_means)
                        else:
                            pred = self.model.query_points(encoded.features, coord, cell)
                    if raw:
                        out[start:stop] = pred[0].float().cpu().numpy()
                    else:
                        rgb = (pred[0].float() * 0.5 + 0.5).clamp_(0, 1).mul_(255).round_()
                        out[start:stop] = rgb.to(torch.uint8).cpu().numpy()
                    tick()
        finally:
            if bar is not None:
                bar.close()
        return out.reshape(rh, rw, 3)

    def _render_bicubic(self, encoded: Encoded, out_hw: tuple[int, int], region: Region) -> np.ndarray:
        (h, w), (H, W) = encoded.lr_size, out_hw
        top, left, rh, rw = region
        src = Image.fromarray(encoded.image.rgb)
        box = (left * w / W, top * h / H, (left + rw) * w / W, (top + rh) * h / H)
        return np.asarray(src.resize((rw, rh), Image.BICUBIC, box=box))

    def render_alpha(self, encoded: Encoded, scale: Scale, region: Region | None = None) -> np.ndarray | None:
        """The input's alpha channel resized like the picture (bicubic), or None."""
        if encoded.image.alpha is None:
            return None
        (h, w) = encoded.lr_size
        H, W = output_size((h, w), scale)
        top, left, rh, rw = region if region is not None else (0, 0, H, W)
        src = Image.fromarray(encoded.image.alpha, "L")
        box = (left * w / W, top * h / H, (left + rw) * w / W, (top + rh) * h / H)
        return np.asarray(src.resize((rw, rh), Image.BICUBIC, box=box))

    def upscale(self, image: ImageLike | InputImage | Encoded, scale: Scale,
                region: Region | None = None, progress: Progress = None) -> Image.Image:
        encoded = image if isinstance(image, Encoded) else self.encode(image)
        rgb = self.render(encoded, scale, region, progress)
        return to_pil(rgb, self.render_alpha(encoded, scale, region))


def _progress(progress: Progress, total: int) -> tuple[object | None, Callable[[], None]]:
    """A tick function for ``progress``: True -> tqdm bar, a callable -> ``callable(done, total)``."""
    done = [0]
    if progress is True:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="chunk", desc="decoding", leave=False)
        return bar, lambda: bar.update(1)
    if callable(progress):
        def tick() -> None:
            done[0] += 1
            progress(min(done[0], total), total)
        return None, tick
    return None, lambda: None


_UPSCALERS: dict[tuple, Upscaler] = {}


def upscale(image: ImageLike, scale: Scale, model: ImplicitSR | str = "hiif-edsr", *,
            device: str | torch.device | None = None, chunk: int | None = None,
            precision: str = "fp32", progress: Progress = None) -> Image.Image:
    """Upscale ``image`` (PIL image, H×W×3 uint8 array or path) by ``scale`` (float or (sy, sx) in
    [1, 30]); ``model`` is a zoo name, ``"bicubic"`` or a loaded model. Output size is
    ``round(H·sy) × round(W·sx)``."""
    validate_scale(scale)
    if isinstance(model, str):
        key = (model, str(resolve_device(device)), chunk, precision)
        if key not in _UPSCALERS:
            _UPSCALERS[key] = Upscaler(model, device, chunk, precision, cache_size=1)
        upscaler = _UPSCALERS[key]
    else:
        upscaler = Upscaler(model, device, chunk, precision, cache_size=1)
    return upscaler.upscale(image, scale, progress=progress)
