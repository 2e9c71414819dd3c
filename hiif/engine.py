"""Arbitrary-scale inference: coordinates, chunking, feature caching, devices, precision.

``Upscaler(model).encode(image)`` runs the encoder once (in tiles when the whole image would not fit
in memory: ``encode_in_tiles``); ``render(encoded, scale, region)`` then
decodes any scale, or any rectangle of the output, from those cached features in bounded memory
(queries are decoded ``chunk`` at a time). ``render_to_png`` streams a whole output to a PNG file in
bands of rows, so that memory does not grow with the output size.

Decoding uses the fast decoders of :mod:`hiif.fast` by default (same outputs as the models'
straightforward ``query_points`` within float32 rounding, ~1e-5); ``Upscaler(..., fast=False)``
renders through ``model.query_points`` itself (the oracle the tests compare against).

HIIF's linear attention averages statistics over all queries of one call, so a naive chunked
render would differ from the official one-call output. The engine instead accumulates those
statistics over the whole output grid first (one pass per attention block) and then decodes every
chunk with them: the result equals one unchunked call, whatever the chunk or region. On the fast
path, when the whole output is rendered and its activations fit ``cache_bytes``, the passes share
one level-0 evaluation (activations are kept between passes), so the statistics cost no extra
decoding. When the output grid exceeds ``stats_max_queries`` the statistics are estimated on a
regular sub-grid of the output: every k-th row and column, k the smallest stride within the budget
that still samples at least min(scale, 4) in-cell positions per axis (see ``_stats_grid``).
Measured error of the estimate (benchmarks/quality.py, trained HIIF-EDSR; benchmarks/RESULTS.md):
256×256 ×12 = 9.4 MP, stride 2 vs exact statistics: max abs difference 0.0016 on a 0–1 scale,
PSNR(estimate vs exact) 80.6 dB; Set5 ×4/×8 with forced strides 2–5: |Δ PSNR| ≤ 0.001 dB vs GT,
max abs difference ≤ 0.0026 (a stride that divides the scale samples one in-cell position and
was measured at −0.045 dB, which the stride rule avoids).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import platform
import struct
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .imageio import ImageError, ImageLike, InputImage, atomic_write, check_output, load_image, to_pil
from .models import ImplicitSR
from .models.common import pixel_centres
from .models.encoders.edsr import EDSR
from .models.encoders.rdn import RDN
from .models.encoders.swinir import SwinIR
from .fast import CONV_BAND_PIXELS, FastDecoder, fast_decoder, tune_allocator

MAX_SCALE = 30.0
#: queries decoded per call by the oracle path: ~0.5 GB of activations on CPU for LIIF
DEFAULT_CHUNK = {"cpu": 16384, "cuda": 262144}
#: queries per call on the fast path (measured best on a 2-core EPYC with the tuned allocator,
#: hiif.fast.tune_allocator: per-chunk temporaries of 16–64 MB; larger chunks run slower)
FAST_CHUNK = {"cpu": {"liif": 8192, "lte": 8192, "hiif": 16384}, "cuda": 65536}
#: an out-of-memory while decoding halves the chunk and retries, down to this many queries
MIN_OOM_CHUNK = 1024
#: HIIF activations (256 per query) kept between the statistics passes up to this size
CACHE_BYTES = {"cpu": 1 << 30, "cuda": 1 << 30}
#: HIIF attention statistics are exact up to this many output pixels, estimated beyond it
STATS_MAX_QUERIES = 4_194_304
#: ``render_to_png`` renders outputs larger than this in bands of about this many pixels
PNG_BAND_PIXELS = 4_194_304
#: largest output ``upscale``/``render`` produce in one piece (pixels)
MAX_OUTPUT_PIXELS = 400_000_000

#: Peak memory ``Upscaler.encode`` adds per input pixel on the CPU (float32; SwinIR: per pixel of
#: the padded frame), by (method, encoder), from benchmarks/encode_memory.py (benchmarks/RESULTS.md
#: section 10): the largest figure measured at 128²–192² on the fast and the reference path, plus
#: 25 %, rounded up to 0.5 kB. RDN and SwinIR: their encoder's activations dominate and are the
#: same for the three methods, so each gets the largest of its encoder's (the measured spread
#: between methods, ~30 %, is allocator noise). HIIF's figures are without its lookup tables (inputs
#: above 512², or ``fast=False``); see ``HIIF_TABLES_BYTES_PER_PIXEL``. An encoder not listed
#: counts as the most expensive one.
ENCODE_BYTES_PER_PIXEL: dict[tuple[str, str], int] = {
    ("liif", "edsr"): 7_500, ("lte", "edsr"): 8_500, ("hiif", "edsr"): 4_500,
    ("liif", "rdn"): 21_500, ("lte", "rdn"): 21_500, ("hiif", "rdn"): 21_500,
    ("liif", "swinir"): 27_000, ("lte", "swinir"): 27_000, ("hiif", "swinir"): 27_000,
}
#: HIIF's figures, by encoder, while its fast decoder also builds the per-pixel lookup tables
#: (``FastHIIF.builds_tables``: inputs up to 512²), measured and rounded the same way
HIIF_TABLES_BYTES_PER_PIXEL: dict[str, int] = {"edsr": 12_500, "rdn": 21_500, "swinir": 27_000}
#: Context (input pixels on each side, rounded up to whole windows) kept around each tile when the
#: SwinIR encoder runs in tiles. Its shifted windows pass information across the whole image, so
#: tiles are not exact for it (EDSR-baseline and RDN are: their context is their receptive field);
#: measured in benchmarks/RESULTS.md section 13.
SWINIR_TILE_CONTEXT = 32
#: smallest tile (input pixels per side, without context) an automatic plan tries before evening
#: the tiles out over the image
MIN_TILE = 64
#: smallest tile ``Upscaler(tile=N)`` accepts (smaller ones spend nearly all their work on context)
MIN_REQUESTED_TILE = 16
#: margin on the estimated memory of the features a tiled encode keeps for the whole image
FEATURE_MEMORY_MARGIN = 1.25
#: below this many pixels an input is not worth suggesting: the message says to free memory instead
MIN_SUGGESTED_PIXELS = 16_384

Scale = Union[float, tuple[float, float]]
Region = tuple[int, int, int, int]  # top, left, height, width in output pixels
Progress = Union[bool, Callable[[int, int], None], None]


def validate_scale(scale: object) -> tuple[float, float]:
    """``s`` or ``(sy, sx)``, each a finite number in [1, 30] -> ``(sy, sx)``; else ``ValueError``."""
    if isinstance(scale, np.ndarray) and scale.ndim == 0:
        scale = scale.item()  # np.array(2.0) -> 2.0
    if isinstance(scale, (str, bytes)) or isinstance(scale, bool):
        raise ValueError(f"scale must be a number or a pair (sy, sx), got {scale!r}")
    if isinstance(scale, numbers.Real):
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


def scale_for_size(lr_size: tuple[int, int], width: int | None = None,
                   height: int | None = None) -> tuple[float, float]:
    """The ``(sy, sx)`` that makes ``output_size(lr_size, ·)`` exactly ``width`` × ``height``.
    Given one side only, both axes take its scale (the aspect ratio is kept, the other side
    rounded). ``ValueError`` when a side is not a positive whole number or the scale it needs
    is outside [1, 30]."""
    h, w = lr_size
    for name, value in (("width", width), ("height", height)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                                  or value < 1):
            raise ValueError(f"{name} must be a positive whole number of pixels, got {value!r}")
    if width is None and height is None:
        raise ValueError("give a width, a height or both")
    # round(h * (H / h)) is H: the quotient is within an ulp, far from a rounding boundary
    sx = width / w if width is not None else height / h
    sy = height / h if height is not None else sx
    for name, target, side, s in (("width", width, w, sx), ("height", height, h, sy)):
        if target is not None and not 1 <= s <= MAX_SCALE:
            raise ValueError(f"a {name} of {target} px is ×{s:g} of the input's {side} px; "
                             f"the scale must be between 1 and {MAX_SCALE:g}")
    return sy, sx


def output_region(lr_size: tuple[int, int], scale: Scale,
                  region: Region | None) -> tuple[tuple[int, int], Region]:
    """The output size and ``region`` (top, left, height, width; None: all of it), checked to lie
    inside the output."""
    H, W = output_size(lr_size, scale)
    top, left, rh, rw = region if region is not None else (0, 0, H, W)
    if rh < 1 or rw < 1 or top < 0 or left < 0 or top + rh > H or left + rw > W:
        raise ValueError(f"region {region} is outside the {W}×{H} output")
    return (H, W), (top, left, rh, rw)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else the CPU; otherwise the device named, checked to
    exist on this machine. Raises ``ValueError`` with one line (torch would give a traceback later,
    at the first tensor moved there)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hint = "use cpu, cuda, cuda:N or mps"
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a name such as 'cpu' or 'cuda', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r} ({hint})") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine "
                             "(use cpu)")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(device)!r} requested but this machine has {count} CUDA "
                             f"device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(device)!r} requested but MPS is not available on this machine")
        return dev
    raise ValueError(f"device {str(device)!r} is not supported ({hint})")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says an allocation failed: torch's (CUDA) ``OutOfMemoryError``, Python's
    ``MemoryError``, or the ``RuntimeError`` torch's CPU allocator raises ("DefaultCPUAllocator:
    can't allocate memory"). The one place that decides it, for the encoder, the decoding retry and
    the demo."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error).lower()
    return any(s in text for s in ("out of memory", "can't allocate memory", "cannot allocate memory",
                                   "not enough memory", "defaultcpuallocator"))


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _cgroup_available_bytes() -> int | None:
    """Memory left under this process's cgroup limit (v2 ``memory.max`` − ``memory.current``, or
    v1's limit − usage), counting inactive page cache as free (the kernel reclaims it before
    killing); None without a limit or when unreadable."""
    dirs = []
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0" and parts[1] == "":
                    dirs.append("/sys/fs/cgroup" + parts[2].rstrip("/"))
    except OSError:
        pass
    dirs.append("/sys/fs/cgroup")
    for d in dirs:
        limit, used = _read_int(f"{d}/memory.max"), _read_int(f"{d}/memory.current")
        if limit is not None and used is not None:
            return max(0, limit - used + _inactive_file(f"{d}/memory.stat"))
    v1 = "/sys/fs/cgroup/memory"
    limit, used = _read_int(f"{v1}/memory.limit_in_bytes"), _read_int(f"{v1}/memory.usage_in_bytes")
    if limit is not None and used is not None and limit < 1 << 60:  # v1 writes ~2^63 for no limit
        return max(0, limit - used + _inactive_file(f"{v1}/memory.stat"))
    return None


def _inactive_file(stat_path: str) -> int:
    try:
        with open(stat_path) as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                if key in ("inactive_file", "total_inactive_file"):
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def available_memory_bytes() -> int | None:
    """Memory this process can still allocate now without swapping or being killed: the kernel's
    ``MemAvailable`` (/proc/meminfo), capped by the cgroup limit if there is one; None when neither
    can be read (then nothing is checked)."""
    available = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    cgroup = _cgroup_available_bytes()
    if cgroup is not None:
        available = cgroup if available is None else min(available, cgroup)
    return available


def _format_bytes(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB" if n >= 1e7 else f"{n / 1e6:.1f} MB"


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX tiles).

    On x86 the instruction sets are asked for by name, because oneDNN's own answer
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is also True on AVX-512 CPUs without BF16,
    where it emulates: measured on such a Xeon (2 cores), a bf16 RDN training step (batch 16) took
    87 s against 38 s in float32, and a 65,536 x 256 x 256 GEMM ran at 51 against 157 GFLOP/s
    (benchmarks/RESULTS.md section 22). Elsewhere (Arm) oneDNN's answer is the one there is."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        try:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:  # an older torch without these probes: oneDNN's answer below
            pass
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 either
        return False


def effective_precision(precision: str, device: torch.device) -> str:
    """The precision that really runs: the one asked for, except bf16 on a CPU without native bf16.
    There oneDNN has no bf16 kernel for some layers (inference fails: "could not create a primitive
    descriptor") and emulates the rest: measured on an AVX2-only EPYC, a bf16 HIIF-EDSR training
    step took 14x a float32 one (15.6 vs 1.1 s). float32 is what bf16 approximates, so the
    results only get closer to the reference."""
    _check_precision(device, precision)
    if precision == "bf16" and device.type == "cpu" and not native_cpu_bf16():
        return "fp32"
    return precision


def _check_precision(device: torch.device, precision: str) -> None:
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is for CUDA; use bf16 on CPU")


def autocast_context(device: torch.device, precision: str):
    _check_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def pad_symmetric(x: Tensor, height: int, width: int) -> Tensor:
    """Extend (B, C, h, w) to (height, width) by concatenating flipped copies (the official SwinIR
    test padding), repeating for inputs smaller than the pad."""
    while x.shape[-2] < height:
        x = torch.cat([x, x.flip(-2)], dim=-2)
    while x.shape[-1] < width:
        x = torch.cat([x, x.flip(-1)], dim=-1)
    return x[..., :height, :width]


def tile_geometry(encoder: torch.nn.Module) -> tuple[int, int, bool]:
    """(context, alignment, exact) for running ``encoder`` in tiles: the pixels of context each
    tile needs on each side, the multiple that tile sizes and offsets keep (SwinIR: its window),
    and whether the stitched features then equal the whole image's (up to float rounding)."""
    radius = getattr(encoder, "receptive_radius", None)
    if radius is not None:
        return int(radius), 1, True
    align = int(getattr(encoder, "window_size", 1))
    return math.ceil(SWINIR_TILE_CONTEXT / align) * align, align, False


def tile_grid(size: tuple[int, int], tile: int) -> list[tuple[int, int]]:
    """Top-left corners of the tile×tile blocks that cover ``size`` (h, w), row by row."""
    return [(top, left) for top in range(0, size[0], tile) for left in range(0, size[1], tile)]


def encode_in_tiles(encoder: torch.nn.Module, inp: Tensor, tile: int, context: int,
                    tick: Callable[[], None] = lambda: None) -> Tensor:
    """``encoder(inp)`` for a (1, 3, H, W) input, computed block by block: each tile×tile block is
    encoded with ``context`` pixels around it (fewer at the image's edges, where the whole-image
    encoder sees its zero padding too) and only the block is kept. Memory: one tile's activations
    plus the (1, C, H, W) result. Exact when ``context`` covers the receptive field
    (``tile_geometry``)."""
    _, _, h, w = inp.shape
    feat = None
    for top, left in tile_grid((h, w), tile):
        t0, l0 = max(0, top - context), max(0, left - context)
        part = encoder(inp[..., t0:min(h, top + tile + context), l0:min(w, left + tile + context)])
        if feat is None:
            feat = part.new_empty(part.shape[0], part.shape[1], h, w)
        th, tw = min(tile, h - top), min(tile, w - left)
        feat[..., top:top + th, left:left + tw] = part[..., top - t0:top - t0 + th, left - l0:left - l0 + tw]
        del part
        tick()
    return feat


@dataclass
class Encoded:
    """Encoder output for one image plus what rendering needs to know about it."""

    key: str
    image: InputImage
    features: dict[str, Tensor] | None  # None for bicubic
    frame: tuple[int, int]  # (h, w) the features cover: the input, padded for SwinIR
    #: which decoder state produced ``features`` (fast tables or oracle features, model weights)
    producer: object = None

    @property
    def lr_size(self) -> tuple[int, int]:
        return self.image.size


class Upscaler:
    """One model on one device, with a small cache of encoded images and HIIF statistics."""

    def __init__(self, model: ImplicitSR | str = "hiif-edsr", device: str | torch.device | None = None,
                 chunk: int | None = None, precision: str = "fp32", cell_rule: str = "official",
                 cache_size: int = 4, stats_max_queries: int = STATS_MAX_QUERIES, fast: bool = True,
                 cache_bytes: int | None = None, tile: int | None = None):
        """``tile``: how the encoder meets large inputs. ``None`` (default): the whole image when
        it fits in memory, else in tiles as large as fit; ``0``: whole images only (one that
        does not fit is refused); ``N``: tiles of N×N input pixels (rounded up to SwinIR's window)
        whenever the image is larger. See ``encode_in_tiles``."""
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, numbers.Integral)
                                 or 0 < tile < MIN_REQUESTED_TILE or tile < 0):
            raise ValueError(f"tile must be None, 0 or at least {MIN_REQUESTED_TILE} pixels, got {tile!r}")
        self.tile = None if tile is None else int(tile)
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            tune_allocator()  # process-wide malloc settings, see hiif.fast.tune_allocator
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if isinstance(model, str) and model != "bicubic":
            from .weights import load_model
            model = load_model(model, self.device)
        elif not isinstance(model, (str, torch.nn.Module)):
            raise ValueError(f"model must be a model name, 'bicubic', a path or a loaded model, got {model!r}")
        self.model = None if model == "bicubic" else model.to(self.device).eval()
        self.use_fast = bool(fast)
        self._fast: FastDecoder | None = None
        self._producer: object = None
        self._refresh_decoder()
        if chunk is None:
            if self._fast is not None:
                per = FAST_CHUNK.get(self.device.type, FAST_CHUNK["cpu"])
                chunk = per[self._fast.method] if isinstance(per, dict) else per
            else:
                chunk = DEFAULT_CHUNK.get(self.device.type, DEFAULT_CHUNK["cpu"])
        self.chunk = int(chunk)
        if self.chunk < 1:
            raise ValueError("chunk must be a positive number of queries")
        self.requested_precision = precision
        self.precision = effective_precision(precision, self.device)
        if cell_rule not in ("official", "unchanged"):
            raise ValueError("cell_rule must be 'official' or 'unchanged'")
        self.cell_rule = cell_rule
        self.cache_size = cache_size
        self.stats_max_queries = stats_max_queries
        self.cache_bytes = int(CACHE_BYTES.get(self.device.type, CACHE_BYTES["cpu"])
                               if cache_bytes is None else cache_bytes)
        self._encoded: OrderedDict[str, Encoded] = OrderedDict()
        self._stats: OrderedDict[tuple, list[Tensor]] = OrderedDict()
        self._feature_bytes: tuple[object, int] = (None, 0)  # feature_bytes_per_pixel's, by decoder state

    @property
    def fast(self) -> bool:
        """Whether rendering goes through :mod:`hiif.fast` (False: the model's own decoder)."""
        return self._fast is not None

    def _refresh_decoder(self) -> None:
        """(Re)build the fast decoder when the model's weights changed; drop stale caches."""
        if self.model is None:
            return
        fingerprint = FastDecoder.fingerprint(self.model)
        if self._producer is not None and self._producer[1] == fingerprint:
            return
        self._fast = fast_decoder(self.model) if self.use_fast else None
        self._producer = (object(), fingerprint)
        if hasattr(self, "_encoded"):
            self._encoded.clear()
            self._stats.clear()

    @property
    def _dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    # -- description ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self.model is None:
            return "bicubic"
        return str(getattr(self.model, "source", None) or getattr(self.model, "method", "model"))

    def describe(self) -> str:
        decoder = "" if self.model is None else (", fast decoder" if self.fast else ", reference decoder")
        precision = self.precision if self.precision == self.requested_precision else \
            f"{self.precision} ({self.requested_precision} is not native on this CPU)"
        return f"{self.name} on {self.device.type}, {precision}{decoder}"

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, image: ImageLike | InputImage, progress: Progress = None) -> Encoded:
        """Run the encoder once per distinct image (cached by content).

        On the CPU the plan is made before any large allocation (``plan_tiles``): the whole image
        when its estimated encoder memory fits the memory available now, else tiles; one that fits
        neither way is refused with a one-line ``MemoryError``. An out-of-memory inside the
        encoder (CUDA) retries in smaller tiles, unless ``tile=0``, then also becomes a one-line
        ``MemoryError``. ``progress`` (True: a tqdm bar; or a callable(done, total)) counts tiles.
        Cached images are not checked again."""
        self._refresh_decoder()
        img = load_image(image)
        digest = hashlib.sha1(img.rgb.tobytes() + str(img.rgb.shape).encode())
        if img.alpha is not None:  # same picture with another alpha: another entry
            digest.update(b"alpha" + img.alpha.tobytes())
        if img.icc:  # ... or another colour profile (carried to the output)
            digest.update(b"icc" + img.icc)
        key = digest.hexdigest()
        if key in self._encoded:
            self._encoded.move_to_end(key)
            return self._encoded[key]
        h, w = img.size
        features, frame = None, (h, w)
        if self.model is not None:
            encoder = getattr(self.model, "encoder", None)
            if isinstance(encoder, SwinIR):  # pad to whole windows; queries map into the frame
                ws = encoder.window_size
                frame = (math.ceil(h / ws) * ws, math.ceil(w / ws) * ws)
            if self.device.type == "cpu":
                # Once per new image, before any large allocation: an encode that does not fit gets
                # the process killed by the kernel without a message, so plan it (or refuse it) here.
                tile = self.plan_tiles(img.size, frame)
            else:
                tile = self._requested_tile(frame)
            inp = torch.from_numpy(img.rgb.copy()).to(self.device).permute(2, 0, 1).unsqueeze(0).float()
            inp = (inp / 255 - 0.5) / 0.5
            if frame != (h, w):
                inp = pad_symmetric(inp, *frame)
            while True:
                out_of_memory = False
                try:
                    features = self._features(inp, tile, progress)
                    break
                except (RuntimeError, MemoryError) as error:
                    if not is_out_of_memory(error):
                        raise
                    out_of_memory = True  # handled below, once the failed encoder's frames are released
                if out_of_memory:
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    smaller = self._smaller_tile(frame, tile)
                    if smaller is None:
                        del inp
                        raise MemoryError(self._out_of_memory_message(img.size, frame))
                    tile = smaller
        encoded = Encoded(key, img, features, frame, self._producer)
        self._encoded[key] = encoded
        while len(self._encoded) > self.cache_size:
            self._encoded.popitem(last=False)
        return encoded

    def _features(self, inp: Tensor, tile: int | None, progress: Progress) -> dict[str, Tensor]:
        """The decoder's features of ``inp``: the whole frame at once, or its encoder map in tiles."""
        decoder = self._fast if self._fast is not None else self.model
        # The encoder runs once per image, in float32 even when the decoder uses autocast: its
        # features feed phases/frequencies where bf16 rounding is amplified.
        with torch.inference_mode():
            if tile is None:
                return decoder.encode(inp)
            context, _, _ = tile_geometry(self.model.encoder)
            bar, tick = _progress(progress, len(tile_grid(tuple(inp.shape[-2:]), tile)), "encoding", "tile")
            try:
                feat = encode_in_tiles(self.model.encoder, inp, tile, context, tick)
            finally:
                if bar is not None:
                    bar.close()
            return decoder.features_from(feat, inp)

    # -- memory needed to encode, and tiles ----------------------------------------------------
    @property
    def memory_label(self) -> str:
        """``method-encoder`` (e.g. ``hiif-rdn``) when both are known, else :attr:`name`."""
        method, kind = getattr(self.model, "method", ""), self._encoder_kind()
        return f"{method}-{kind}" if method and kind else self.name

    def _encoder_kind(self) -> str | None:
        encoder = getattr(self.model, "encoder", None)
        for cls, kind in ((SwinIR, "swinir"), (RDN, "rdn"), (EDSR, "edsr")):
            if isinstance(encoder, cls):
                return kind
        return None

    def _bytes_per_pixel(self, pixels: int) -> int:
        """Estimated encode memory per pixel of the feature frame (CPU, float32)."""
        kind = self._encoder_kind()
        builds_tables = getattr(self._fast, "builds_tables", None)
        if builds_tables is not None and builds_tables(pixels, 1):
            return HIIF_TABLES_BYTES_PER_PIXEL.get(kind, max(HIIF_TABLES_BYTES_PER_PIXEL.values()))
        key = (getattr(self.model, "method", ""), kind)
        return ENCODE_BYTES_PER_PIXEL.get(key, max(ENCODE_BYTES_PER_PIXEL.values()))

    def _bytes_per_pixel_without_tables(self) -> int:
        """The rate of a frame too large for HIIF's lookup tables: a tile's (the tables are built
        once, for the whole stitched map) and that of inputs beyond the table limit."""
        return self._bytes_per_pixel(1 << 62)

    def encode_memory_bytes(self, frame: tuple[int, int], tile: int | None = None) -> int:
        """Estimated peak memory ``encode`` adds on the CPU for a feature frame (h, w) (the input;
        SwinIR: padded to whole windows): whole (``tile=None``), from ``ENCODE_BYTES_PER_PIXEL``,
        or in tiles of ``tile`` (``tiled_memory_bytes``); 0 for bicubic."""
        if self.model is None:
            return 0
        if tile is not None and tile < max(frame):
            return self.tiled_memory_bytes(frame, tile)
        pixels = frame[0] * frame[1]
        return pixels * self._bytes_per_pixel(pixels)

    def tiled_memory_bytes(self, frame: tuple[int, int], tile: int) -> int:
        """Estimated peak of a tiled encode: one tile with its context at the whole-image rate,
        plus what is kept for the whole frame (the stitched encoder map and the decoder's
        features, ``feature_bytes_per_pixel``)."""
        context, _, _ = tile_geometry(self.model.encoder)
        th, tw = min(frame[0], tile + 2 * context), min(frame[1], tile + 2 * context)
        pixels = frame[0] * frame[1]
        # a band of the table convolution holds its output and a channels-last copy of it
        per = self.feature_bytes_per_pixel(frame)
        band = 2 * min(pixels, CONV_BAND_PIXELS) * per
        return th * tw * self._bytes_per_pixel_without_tables() + pixels * per + band

    def feature_bytes_per_pixel(self, frame: tuple[int, int]) -> int:
        """Bytes per frame pixel that a tiled encode holds once its tiles are done: the encoder's
        map (float32) and the decoder's features made from it (measured on a 4×4 map: the tensors
        ``features_from`` returns), twice for the reference path (its channels-last copy is made
        whole), plus ``FEATURE_MEMORY_MARGIN``. The fast path's banded convolution adds a fixed
        amount (``tiled_memory_bytes``)."""
        key = ("feature_bytes", self._producer, self._fast is not None and self._fast.method == "hiif"
               and self._fast.builds_tables(*frame))
        if self._feature_bytes[0] != key:
            c = self.model.encoder.out_dim
            with torch.inference_mode():
                probe, inp = torch.zeros(1, c, 4, 4), torch.zeros(1, 3, 4, 4)
                if self._fast is None:
                    made = self.model.features_from(probe, inp)
                elif self._fast.method == "hiif":
                    made = self._fast.features_from(probe, inp, tables=key[2])
                else:
                    made = self._fast.features_from(probe, inp)
            kept = sum(t.numel() * t.element_size() for t in made.values()) / 16
            per = 4 * c + kept * (2 if self._fast is None else 1)
            self._feature_bytes = (key, int(math.ceil(per * FEATURE_MEMORY_MARGIN)))
        return self._feature_bytes[1]

    def _tile_align(self) -> int:
        return tile_geometry(self.model.encoder)[1]

    def _requested_tile(self, frame: tuple[int, int]) -> int | None:
        """The tile size given as ``tile=N`` (aligned), or None when the frame is not larger."""
        if not self.tile:
            return None
        align = self._tile_align()
        tile = math.ceil(self.tile / align) * align
        return tile if tile < max(frame) else None

    def _smaller_tile(self, frame: tuple[int, int], tile: int | None) -> int | None:
        """After an out-of-memory: half the tile (the frame's longer side at first), or None when
        tiles are off or already at ``MIN_TILE``."""
        if self.tile == 0 or self.model is None:
            return None
        align = self._tile_align()
        current = max(frame) if tile is None else tile
        smaller = math.ceil(current / 2 / align) * align
        return smaller if MIN_TILE <= smaller < current else None

    def _largest_tile(self, frame: tuple[int, int], available: int) -> int | None:
        """The tile size whose tiled encode fits ``available``, as large as possible and then
        evened out over the frame (3000 px at most 1,800 a tile: two of 1,500), or None."""
        align = self._tile_align()
        longest = max(frame)
        tile = ((longest - 1) // align) * align  # smaller than the frame: else it is the whole
        while tile > MIN_TILE and self.tiled_memory_bytes(frame, tile) > available:
            tile = max(MIN_TILE, (int(tile * 0.85) // align) * align)
        if tile < MIN_TILE or self.tiled_memory_bytes(frame, tile) > available:
            return None
        per_side = math.ceil(longest / tile)
        return math.ceil(longest / per_side / align) * align

    def plan_tiles(self, size: tuple[int, int], frame: tuple[int, int]) -> int | None:
        """How ``encode`` runs an image of ``size`` (feature ``frame``) on the CPU: ``None`` = whole,
        else the tile size. Raises a one-line ``MemoryError`` when the estimate exceeds the
        memory available now either way; nothing is refused when that cannot be read."""
        if self.model is None:
            return None
        requested = self._requested_tile(frame)
        need = self.encode_memory_bytes(frame, requested)
        available = available_memory_bytes()
        if available is None or need <= available:
            return requested
        tiled = requested is not None
        if self.tile is None:
            tile = self._largest_tile(frame, available)
            if tile is not None:
                return tile
            if max(frame) > MIN_TILE:  # say what the smallest tiles would need
                need, tiled = self.tiled_memory_bytes(frame, MIN_TILE), True
        h, w = size
        how = " in tiles" if tiled else ""
        raise MemoryError(f"{self.memory_label} needs ~{_format_bytes(need)} to encode a {w}×{h} image{how}, "
                          f"{_format_bytes(available)} {'is' if available < 2e9 else 'are'} available: "
                          f"{self._fit_advice(size, frame, available)}")

    def _max_pixels(self, available: int) -> int:
        """The largest frame (pixels) whose estimated encode fits ``available`` bytes (whole, or
        in tiles when those are allowed)."""
        largest = available // self._bytes_per_pixel_without_tables()
        builds_tables = getattr(self._fast, "builds_tables", None)
        if builds_tables is not None and builds_tables(largest, 1):  # then tables come with it
            largest = available // self._bytes_per_pixel(1)
        if self.tile != 0:
            context = tile_geometry(self.model.encoder)[0]
            side = (self.tile or MIN_TILE) + 2 * context
            per = self.feature_bytes_per_pixel((1 << 31, 1 << 31))  # a frame beyond HIIF's table limit
            rest = available - side * side * self._bytes_per_pixel_without_tables() - 2 * CONV_BAND_PIXELS * per
            largest = max(largest, rest // per)
        return int(largest)

    def _fit_advice(self, size: tuple[int, int], frame: tuple[int, int], available: int | None) -> str:
        """What to do instead: the largest input that fits (with an example size), or a smaller
        backbone; when not even a small input fits, free memory."""
        smaller = " or a smaller backbone (EDSR-baseline)" if self._encoder_kind() in ("rdn", "swinir") else ""
        if available is None:
            return f"use a smaller input (e.g. downscale it){smaller}"
        max_pixels = self._max_pixels(available)
        if max_pixels < MIN_SUGGESTED_PIXELS:
            return f"free memory (close other programs), or use a much smaller input{smaller}"
        if max_pixels >= frame[0] * frame[1]:  # the estimate says it fits: something else took it
            return f"free memory or use a smaller input (e.g. downscale it){smaller}"
        (h, w), k = size, math.sqrt(max_pixels / (frame[0] * frame[1]))
        mp = max_pixels / 1e6
        return (f"use an input of at most {mp:.1f} MP" if mp >= 1 else f"use an input of at most {mp:.2f} MP") + \
            f" (e.g. downscale it to {max(1, int(w * k))}×{max(1, int(h * k))}){smaller}"

    def _out_of_memory_message(self, size: tuple[int, int], frame: tuple[int, int]) -> str:
        h, w = size
        where = "GPU memory" if self.device.type == "cuda" else "memory"
        available = available_memory_bytes() if self.device.type == "cpu" else None
        advice = self._fit_advice(size, frame, available)
        if self.device.type == "cuda":
            advice += " or the CPU"
        return f"{self.memory_label} ran out of {where} encoding a {w}×{h} image: {advice}"

    def cached(self) -> dict[str, Encoded]:
        """The encoded images currently cached, by key (oldest first)."""
        return dict(self._encoded)

    def evict(self, key: str) -> None:
        """Forget one cached encoding (and its HIIF statistics)."""
        self._encoded.pop(key, None)
        for stats_key in [k for k in self._stats if k and k[0] == key]:
            self._stats.pop(stats_key, None)

    def clear(self) -> None:
        """Forget every cached encoding and HIIF statistics (the model stays loaded)."""
        self._encoded.clear()
        self._stats.clear()

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
        rows, cols = self._stats_grid(encoded, rows, cols)
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
        (H, W), (top, left, rh, rw) = output_region(encoded.lr_size, scale, region)
        if rh * rw > MAX_OUTPUT_PIXELS:
            raise ValueError(f"output of {rw}×{rh} = {rh * rw / 1e6:.0f} MP exceeds the limit of "
                             f"{MAX_OUTPUT_PIXELS / 1e6:.0f} MP; render a region instead")
        if self.model is None:
            if raw:
                raise ValueError("bicubic has no raw decoder output")
            return self._render_bicubic(encoded, (H, W), (top, left, rh, rw))
        self._refresh_decoder()
        if encoded.producer is not self._producer:  # from another decoder or older weights
            encoded = self.encode(encoded.image, progress)

        out = np.empty((rh * rw, 3), np.float32 if raw else np.uint8)

        def emit(start: int, stop: int, pred: Tensor) -> None:
            pred = pred.reshape(-1, 3).float()
            if raw:
                out[start:stop] = pred.cpu().numpy()
            else:
                rgb = (pred * 0.5 + 0.5).clamp_(0, 1).mul_(255).round_()
                out[start:stop] = rgb.to(torch.uint8).cpu().numpy()

        if self._fast is None:
            decode = self._decode_oracle
        elif self._fast.mixes_queries:
            decode = self._decode_fast_mixing
        else:
            decode = self._decode_fast
        self._with_oom_retry(lambda: decode(encoded, (H, W), (top, left, rh, rw), emit, progress))
        return out.reshape(rh, rw, 3)

    def _with_oom_retry(self, decode: Callable[[], None]) -> None:
        """Run ``decode``; on an out-of-memory (``is_out_of_memory``), free the cache and run it again with
        half the chunk (and half ``cache_bytes``), down to ``MIN_OOM_CHUNK``. Results do not depend
        on the chunk (HIIF's statistics are whole-grid), so a retry renders the same output. The
        smaller chunk is kept for later renders: the missing memory is likely to stay missing."""
        while True:
            try:
                with torch.inference_mode():
                    decode()
                return
            except (RuntimeError, MemoryError) as error:
                if not is_out_of_memory(error):
                    raise
                if self.chunk <= MIN_OOM_CHUNK:
                    raise torch.OutOfMemoryError(
                        f"out of memory on {self.device} even with chunks of {self.chunk} queries: "
                        f"render a smaller region" + ("" if self.device.type == "cpu" else " or use the CPU")
                    ) from error
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.chunk = max(MIN_OOM_CHUNK, self.chunk // 2)
                self.cache_bytes //= 2  # HIIF's kept activations are the other large allocation
                warnings.warn(f"out of memory on {self.device}; retrying with chunks of {self.chunk} queries",
                              RuntimeWarning, stacklevel=3)

    def _grid(self, encoded: Encoded, out_hw: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """Row and column centres of the whole output (in the feature frame) and the cell."""
        (h, w), (fh, fw) = encoded.lr_size, encoded.frame
        H, W = out_hw
        return self._axis(H, h, fh), self._axis(W, w, fw), self.cell_for(encoded, (H, W))

    def _stats_key(self, encoded: Encoded, out_hw: tuple[int, int], cell: Tensor) -> tuple:
        return (encoded.key, *out_hw, tuple(cell.flatten().tolist()), self.precision,
                self.stats_max_queries, self.fast)

    def _keep_stats(self, key: tuple, value) -> None:
        self._stats[key] = value
        while len(self._stats) > 4 * self.cache_size:
            self._stats.popitem(last=False)

    def _decode_oracle(self, encoded: Encoded, out_hw: tuple[int, int], region: Region,
                       emit: Callable[[int, int, Tensor], None], progress: Progress) -> None:
        """Chunks through ``model.query_points`` (the straightforward implementation)."""
        H, W = out_hw
        top, left, rh, rw = region
        rows_all, cols_all, cell = self._grid(encoded, out_hw)
        rows, cols = rows_all[top:top + rh], cols_all[left:left + rw]
        n = rh * rw
        one_call = n <= self.chunk and (rh, rw) == (H, W)
        needs_stats = getattr(self.model, "mixes_queries", False) and not one_call
        total_ticks = math.ceil(n / self.chunk)
        if needs_stats and self._stats_key(encoded, out_hw, cell) not in self._stats:
            sr, sc = self._stats_grid(encoded, rows_all, cols_all)
            total_ticks += len(self.model.attention_blocks) * math.ceil(sr.numel() * sc.numel() / self.chunk)
        bar, tick = _progress(progress, total_ticks)
        try:
            kv_means = None
            if needs_stats:
                key = self._stats_key(encoded, out_hw, cell)
                kv_means = self._stats.get(key)
                if kv_means is None:
                    kv_means = self._attention_stats(encoded, rows_all, cols_all, cell, tick)
                    self._keep_stats(key, kv_means)
            for start in range(0, n, self.chunk):
                stop = min(n, start + self.chunk)
                coord = self._coords(rows, cols, start, stop)
                with autocast_context(self.device, self.precision):
                    if kv_means is not None:
                        pred = self.model.query_points(encoded.features, coord, cell, kv_means)
                    else:
                        pred = self.model.query_points(encoded.features, coord, cell)
                emit(start, stop, pred[0])
                tick()
        finally:
            if bar is not None:
                bar.close()

    def _decode_fast(self, encoded: Encoded, out_hw: tuple[int, int], region: Region,
                     emit: Callable[[int, int, Tensor], None], progress: Progress) -> None:
        """LIIF / LTE: queries are independent, any chunking gives the same values."""
        top, left, rh, rw = region
        rows_all, cols_all, cell = self._grid(encoded, out_hw)
        rows, cols = rows_all[top:top + rh], cols_all[left:left + rw]
        n = rh * rw
        bar, tick = _progress(progress, math.ceil(n / self.chunk))
        try:
            for start in range(0, n, self.chunk):
                stop = min(n, start + self.chunk)
                coord = self._coords(rows, cols, start, stop)[0]
                emit(start, stop, self._fast.query(encoded.features, coord, cell[0], self._dtype))
                tick()
        finally:
            if bar is not None:
                bar.close()

    def stats_stride(self, encoded: Encoded, scale: Scale) -> int:
        """Stride of the sub-grid HIIF's attention statistics are estimated on at this scale
        (1: exact, over the whole output)."""
        rows, cols, _ = self._grid(encoded, output_size(encoded.lr_size, scale))
        sub = self._stats_grid(encoded, rows, cols)[0]
        return 1 if sub.numel() == rows.numel() else int(round(float(sub[1] - sub[0]) * rows.numel() / 2))

    def _stats_grid(self, encoded: Encoded, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
        """The (sub-)grid the attention statistics are taken over: the whole output up to
        ``stats_max_queries``, else every k-th row and column (starting at k // 2).

        k is the smallest stride within the budget that also samples at least min(s, 4) distinct
        positions inside an LR cell per axis (s = the axis's scale, rounded): a stride that is a
        multiple of an integer scale would see a single in-cell position, i.e. constant
        hierarchical bits, and bias the estimate (measured: −0.045 dB on Set5 ×4 with stride 4,
        against −0.001 dB with stride 3; benchmarks/RESULTS.md).
        """
        n = rows.numel() * cols.numel()
        if n <= self.stats_max_queries:
            return rows, cols
        stride = math.ceil(math.sqrt(n / self.stats_max_queries))
        (h, w), (fh, fw) = encoded.lr_size, encoded.frame
        scales = [max(1, round(rows.numel() / h)), max(1, round(cols.numel() / w))]
        while any(s // math.gcd(s, stride) < min(s, 4) for s in scales):
            stride += 1
        return rows[stride // 2::stride], cols[stride // 2::stride]

    def _decode_fast_mixing(self, encoded: Encoded, out_hw: tuple[int, int], region: Region,
                            emit: Callable[[int, int, Tensor], None], progress: Progress) -> None:
        """HIIF: whole-grid attention statistics, then chunks decoded with them.

        Whole output within ``cache_bytes`` and statistics not yet known: one pass per stage over
        cached activations (level 0 + block-0 statistics, block 0 + block-1 statistics, block 1 +
        levels 1–5), so each query is decoded once. Otherwise the statistics passes recompute the
        earlier stages on the (sub-)grid, then each chunk is decoded in one go.
        """
        fd, tables, dtype, chunk = self._fast, encoded.features, self._dtype, self.chunk
        H, W = out_hw
        top, left, rh, rw = region
        rows_all, cols_all, cell = self._grid(encoded, out_hw)
        rows, cols = rows_all[top:top + rh], cols_all[left:left + rw]
        n = rh * rw
        n_blocks = len(fd.blocks)
        key = self._stats_key(encoded, out_hw, cell)
        mixers = self._stats.get(key)
        whole = (rh, rw) == (H, W)
        itemsize = torch.finfo(dtype).bits // 8
        cached = (mixers is None and whole and n <= self.stats_max_queries
                  and n * fd.dim * itemsize <= self.cache_bytes)
        chunks = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
        if cached:
            total = (n_blocks + 1) * len(chunks)
        else:
            total = len(chunks)
            if mixers is None:
                sr, sc = self._stats_grid(encoded, rows_all, cols_all)
                total += n_blocks * math.ceil(sr.numel() * sc.numel() / chunk)
        bar, tick = _progress(progress, total)
        try:
            if cached:
                acts = torch.empty((n, fd.dim), dtype=dtype, device=self.device)
                local = torch.empty((n, 2), device=self.device)
                mixers = []
                for stage in range(n_blocks + 1):
                    acc = fd.kv_accumulator(stage) if stage < n_blocks else None
                    for a, b in chunks:
                        if stage == 0:
                            x, local[a:b] = fd.level0(tables, self._coords(rows, cols, a, b)[0], cell[0], dtype)
                        else:
                            x = fd.block(stage - 1, acts[a:b], mixers[stage - 1])
                        if stage < n_blocks:
                            acts[a:b] = x
                            acc.add(*fd.kv_terms(stage, x))
                        else:
                            coord = self._coords(rows, cols, a, b)[0]
                            emit(a, b, fd.tail(tables, x, local[a:b], coord))
                        tick()
                    if stage < n_blocks:
                        mixers.append(fd.attention_map(stage, acc.mean()))
                self._keep_stats(key, mixers)
                return
            if mixers is None:
                mixers = self._fast_stats(encoded, rows_all, cols_all, cell, tick)
                self._keep_stats(key, mixers)
            for a, b in chunks:
                coord = self._coords(rows, cols, a, b)[0]
                x, loc = fd.level0(tables, coord, cell[0], dtype)
                for i, mixer in enumerate(mixers):
                    x = fd.block(i, x, mixer)
                emit(a, b, fd.tail(tables, x, loc, coord))
                tick()
        finally:
            if bar is not None:
                bar.close()

    def _fast_stats(self, encoded: Encoded, rows: Tensor, cols: Tensor, cell: Tensor,
                    tick: Callable[[], None]) -> list:
        """Attention statistics over the (sub-)grid, recomputing earlier stages per pass; returns
        each block's statistics folded into its mixing map (:meth:`FastHIIF.attention_map`)."""
        fd, tables, dtype = self._fast, encoded.features, self._dtype
        rows, cols = self._stats_grid(encoded, rows, cols)
        n = rows.numel() * cols.numel()
        mixers: list = []
        for i in range(len(fd.blocks)):
            acc = fd.kv_accumulator(i)
            for a in range(0, n, self.chunk):
                coord = self._coords(rows, cols, a, min(n, a + self.chunk))[0]
                x, _ = fd.level0(tables, coord, cell[0], dtype)
                for j, mixer in enumerate(mixers):
                    x = fd.block(j, x, mixer)
                acc.add(*fd.kv_terms(i, x))
                tick()
            mixers.append(fd.attention_map(i, acc.mean()))
        return mixers

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
        (H, W), (top, left, rh, rw) = output_region((h, w), scale, region)
        src = Image.fromarray(encoded.image.alpha, "L")
        box = (left * w / W, top * h / H, (left + rw) * w / W, (top + rh) * h / H)
        return np.asarray(src.resize((rw, rh), Image.BICUBIC, box=box))

    def upscale(self, image: ImageLike | InputImage | Encoded, scale: Scale,
                region: Region | None = None, progress: Progress = None) -> Image.Image:
        encoded = image if isinstance(image, Encoded) else self.encode(image, progress)
        rgb = self.render(encoded, scale, region, progress)
        return to_pil(rgb, self.render_alpha(encoded, scale, region), encoded.image.icc)

    def render_to_png(self, image: ImageLike | InputImage | Encoded, scale: Scale, path: str | os.PathLike,
                      region: Region | None = None, progress: Progress = None,
                      compress_level: int = 6, band_pixels: int = PNG_BAND_PIXELS) -> tuple[int, int]:
        """Render ``image`` (or an ``Encoded``) at ``scale`` straight into a PNG file; returns
        (width, height). Outputs above ``band_pixels`` (or ``MAX_OUTPUT_PIXELS``) are rendered and
        compressed in bands of rows, so memory stays bounded whatever the output size. The input's
        alpha channel and RGB ICC profile are kept. The file appears whole or not at all (written
        to a temporary file in the same folder, renamed at the end, removed on error or Ctrl-C)."""
        source = image if isinstance(image, Encoded) else load_image(image)
        lr_size = source.lr_size if isinstance(source, Encoded) else source.size
        (H, W), (top, left, rh, rw) = output_region(lr_size, scale, region)
        if check_output(path, (rh, rw)) != "PNG":  # before the encoder runs
            raise ImageError(f"{path}: render_to_png writes PNG; give the file a .png name")
        encoded = source if isinstance(source, Encoded) else self.encode(source, progress)
        has_alpha = encoded.image.alpha is not None
        channels = 4 if has_alpha else 3
        band_pixels = min(band_pixels, MAX_OUTPUT_PIXELS)  # each band is one render()
        band = rh if rh * rw <= band_pixels else max(1, band_pixels // rw)
        bands = [(t, min(band, top + rh - t)) for t in range(top, top + rh, band)]
        # one band: render's own progress (per chunk) says more than a single band tick would
        bar, tick = _progress(progress if len(bands) > 1 else None, len(bands))
        inner = progress if len(bands) == 1 else None
        comp = zlib.compressobj(compress_level)
        prev = np.zeros((1, rw * channels), np.uint8)
        try:
            with atomic_write(path) as fh:
                fh.write(b"\x89PNG\r\n\x1a\n")
                fh.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", rw, rh, 8, 6 if has_alpha else 2, 0, 0, 0)))
                if encoded.image.icc:  # iCCP: profile name, NUL, compression method 0, zlib data
                    fh.write(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(encoded.image.icc)))
                for t, b in bands:
                    rgb = self.render(encoded, scale, (t, left, b, rw), inner)
                    if has_alpha:
                        rgb = np.dstack([rgb, self.render_alpha(encoded, scale, (t, left, b, rw))])
                    rows = rgb.reshape(b, rw * channels)
                    # PNG filter 2 ("Up"): each row minus the row above, modulo 256
                    up = np.empty((b, rw * channels + 1), np.uint8)
                    up[:, 0] = 2
                    np.subtract(rows, np.concatenate([prev, rows[:-1]]), out=up[:, 1:])
                    prev = rows[-1:].copy()
                    data = comp.compress(up.tobytes())
                    if data:
                        fh.write(_png_chunk(b"IDAT", data))
                    del rgb, rows, up
                    tick()
                fh.write(_png_chunk(b"IDAT", comp.flush()))
                fh.write(_png_chunk(b"IEND", b""))
        finally:
            if bar is not None:
                bar.close()
        return rw, rh


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type and data."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _progress(progress: Progress, total: int, desc: str = "decoding",
              unit: str = "chunk") -> tuple[object | None, Callable[[], None]]:
    """A tick function for ``progress``: True -> tqdm bar, a callable -> ``callable(done, total)``."""
    done = [0]
    if progress is True:
        from tqdm import tqdm
        bar = tqdm(total=total, unit=unit, desc=desc, leave=False)
        return bar, lambda: bar.update(1)
    if callable(progress):
        def tick() -> None:
            done[0] += 1
            progress(min(done[0], total), total)
        return None, tick
    return None, lambda: None


_UPSCALERS: dict[tuple, Upscaler] = {}


def upscale(image: ImageLike, scale: Scale | None = None, model: ImplicitSR | str = "hiif-edsr", *,
            width: int | None = None, height: int | None = None,
            device: str | torch.device | None = None, chunk: int | None = None,
            precision: str = "fp32", progress: Progress = None) -> Image.Image:
    """Upscale ``image`` (PIL image, H×W×3 uint8 array or path) by ``scale`` (float or (sy, sx) in
    [1, 30]), or to ``width`` and/or ``height`` pixels (one alone keeps the aspect ratio:
    :func:`scale_for_size`); ``model`` is a zoo name, ``"bicubic"`` or a loaded model. Output size
    is ``round(H·sy) × round(W·sx)``."""
    if scale is None:
        if width is None and height is None:
            raise ValueError("give a scale, or the output's width and/or height")
        image = load_image(image)  # its size (EXIF rotation applied) sets the scale
        scale = scale_for_size(image.size, width, height)
    elif width is not None or height is not None:
        raise ValueError("give a scale or a width/height, not both")
    validate_scale(scale)
    if isinstance(model, str):
        key = (model, str(resolve_device(device)), chunk, precision)
        if key not in _UPSCALERS:
            _UPSCALERS[key] = Upscaler(model, device, chunk, precision, cache_size=1)
        upscaler = _UPSCALERS[key]
    else:
        upscaler = Upscaler(model, device, chunk, precision, cache_size=1)
    try:
        return upscaler.upscale(image, scale, progress=progress)
    finally:
        # Keep the loaded model (loading is slow) but not this image's features: they are ~1–5 kB
        # per input pixel, and a one-shot call has no later render to reuse them.
        upscaler.clear()
