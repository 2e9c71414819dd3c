"""Everything behind the Gradio demo (``app.py`` only lays out the page).

- :class:`ModelSet`: the nine zoo models (HIIF / LIIF / LTE × EDSR-baseline / RDN / SwinIR) loaded
  once on one device, one :class:`~hiif.engine.Upscaler` each, with a report of the weights used
  and of the missing ones. Encoded features are cached per (image, model), within a memory budget,
  so that a new scale or region re-runs only the decoders.
- :func:`plan_job`: turns the user's input (image, backbone, scale, optional vertical scale, mode,
  clicked point, preview size) into a :class:`Job`: the encoder input (a part around the clicked
  point when the image is larger than the server encodes), the ground truth in "Ground truth" mode,
  the output size and the region of it to render.
- :meth:`ModelSet.compare`: renders that region with HIIF, bicubic, LIIF and LTE, times each, and
  scores them against the ground truth (PSNR, SSIM).
- Limits per device (:class:`Limits`): the sliders show at most about 4 MP per image (a region of the
  output when it is larger); whole outputs are rendered on request up to ``full_pixels``.
- :meth:`Comparison.figure`: the comparison as one figure for slides (:mod:`hiif.figure`);
  :func:`compare` runs a comparison for one user's own machine (``hiif.compare``, CLI ``compare``).

Every user-facing problem is a :class:`DemoError` (a ``ValueError``) with one clear sentence.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from PIL import Image

from . import figure as figures
from .engine import MAX_OUTPUT_PIXELS, STATS_MAX_QUERIES, Upscaler, is_out_of_memory, output_size, resolve_device, validate_scale
from .figure import Panel
from .imageio import MAX_INPUT_PIXELS, ImageError, InputImage, composite_on_white, load_image
from .metrics import psnr, ssim
from .weights import ZOO, WeightsError, load_model

#: UI label -> zoo suffix
BACKBONES: dict[str, str] = {"EDSR-baseline": "edsr", "RDN": "rdn", "SwinIR": "swinir"}
#: share of the CPU input limit each backbone takes: RDN's and SwinIR's encoders cost 20-26x
#: EDSR-baseline's per pixel on a CPU (a 256² input: 25 and 33 s against 1.3 s on 2 cores,
#: benchmarks/RESULTS.md section 2) and a job runs three: a quarter keeps a first run to ~5 min, not ~20
CPU_INPUT_SHARE: dict[str, float] = {"edsr": 1.0, "rdn": 0.25, "swinir": 0.25}
METHODS = ("hiif", "liif", "lte")
#: HIIF's whole-output attention statistics on a CPU server: exact up to this many output pixels,
#: estimated on a sub-grid beyond. 2^18 instead of 2^20 cut HIIF's 512² preview of a 256² input
#: from 36-40 s to 12-14 s on a 2-core AVX2 CPU at ×4/×12/×30, at most 1 grey level apart
#: (0.05-0.16 % of pixels; benchmarks/RESULTS.md section 21)
CPU_STATS_MAX_QUERIES = 2 ** 18
#: render and table order; the sliders pair HIIF with each of the others
ORDER = ("hiif", "bicubic", "liif", "lte")
LABELS = {"hiif": "HIIF", "bicubic": "Bicubic", "liif": "LIIF", "lte": "LTE"}
MODES = ("Upscale", "Ground truth")
#: side lengths offered for the preview region (px); 2048² ≈ 4.2 MP is the most a slider shows
PREVIEW_SIDES = (256, 512, 1024, 2048)
SLIDER_MAX_PIXELS = 2048 * 2048
#: the API returns whole images up to this output size, the region around the centre beyond it
API_MAX_PIXELS = 2048 * 2048
TABLE_HEADERS = ["Method", "Model", "Time (s)", "PSNR (dB)", "SSIM"]
#: the methods' order in a comparison figure: the method shown last, as papers do
FIGURE_ORDER = ("bicubic", "liif", "lte", "hiif")

Progress = Callable[[float, str], None]


class DemoError(ValueError):
    """A problem to show the user (the app turns it into ``gr.Error``)."""


# --------------------------------------------------------------------------------------------
# Limits per device
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """What one server does on its device. Defaults: see :func:`device_limits`."""

    device: str
    preview_side: int  # default preview region side (px)
    full_pixels: int  # largest output rendered whole, on request
    input_pixels: int  # largest encoder input (the LR image) for EDSR-baseline: see input_pixels_for
    concurrency: int  # jobs at a time (Gradio queue)
    chunk: int | None  # queries per decoder call (None: the engine's default)
    stats_max_queries: int  # HIIF attention statistics exact up to this output size
    cache_bytes: int  # encoded features kept in memory, all models together
    job_seconds: float = 1200.0  # a job still decoding after this long is stopped with a message
    shared: bool = True  # a server for many visitors: slower backbones get a share of a CPU's input limit

    def input_pixels_for(self, backbone: str) -> int:
        """The input limit for one backbone (``CPU_INPUT_SHARE`` of it on a shared CPU server)."""
        if self.device != "cpu" or not self.shared:
            return self.input_pixels
        return int(self.input_pixels * CPU_INPUT_SHARE[BACKBONES[backbone]])


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise DemoError(f"environment variable {name}={text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise DemoError(f"environment variable {name}={text!r} must be positive")
    return value


def device_limits(device: str | torch.device | None = None) -> Limits:
    """CPU: previews 512², whole outputs up to 16 MP, inputs up to 1 MP (1024²), one job at a time.
    CUDA: previews 2048², whole outputs up to 64 MP, inputs up to 4 MP (less on small GPUs), two jobs.

    Environment overrides (numbers): ``HIIF_DEMO_PREVIEW`` (side, px), ``HIIF_DEMO_FULL_MP``,
    ``HIIF_DEMO_INPUT_MP``, ``HIIF_DEMO_CONCURRENCY``, ``HIIF_DEMO_CHUNK``, ``HIIF_DEMO_CACHE_GB``,
    ``HIIF_DEMO_TIMEOUT`` (seconds per job: 1200 on CPU, 300 on CUDA).
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        total = torch.cuda.get_device_properties(dev).total_memory
        # ~12 kB of features and encoder activations per input pixel for the widest backbone (RDN)
        input_pixels = int(min(2048 * 2048, total * 0.5 / 12_000))
        base = dict(preview_side=2048, full_pixels=64_000_000, input_pixels=input_pixels,
                    concurrency=2, chunk=None, stats_max_queries=STATS_MAX_QUERIES,
                    cache_bytes=int(total * 0.35), job_seconds=300)
    else:
        base = dict(preview_side=512, full_pixels=16_000_000, input_pixels=1024 * 1024, concurrency=1,
                    chunk=None, stats_max_queries=CPU_STATS_MAX_QUERIES, cache_bytes=8 * 2 ** 30,
                    job_seconds=1200)
    side = int(_env_number("HIIF_DEMO_PREVIEW", base["preview_side"]))
    chunk = os.environ.get("HIIF_DEMO_CHUNK")
    return Limits(
        device=dev.type,
        preview_side=max(16, min(side, 2048)),
        full_pixels=int(_env_number("HIIF_DEMO_FULL_MP", base["full_pixels"] / 1e6) * 1e6),
        input_pixels=int(_env_number("HIIF_DEMO_INPUT_MP", base["input_pixels"] / 1e6) * 1e6),
        concurrency=max(1, int(_env_number("HIIF_DEMO_CONCURRENCY", base["concurrency"]))),
        chunk=int(_env_number("HIIF_DEMO_CHUNK", 1)) if chunk else base["chunk"],
        stats_max_queries=base["stats_max_queries"],
        cache_bytes=int(_env_number("HIIF_DEMO_CACHE_GB", base["cache_bytes"] / 2 ** 30) * 2 ** 30),
        job_seconds=_env_number("HIIF_DEMO_TIMEOUT", base["job_seconds"]),
    )


def local_limits(device: str | torch.device | None = None, input_pixels: int | None = None) -> Limits:
    """Limits for one user's own comparisons (``python -m hiif compare``): no time limit, no share
    of a server, inputs up to ``input_pixels`` (default the library's ``MAX_INPUT_PIXELS``; a larger
    one is compared in a part of that size, as on a server; the engine still tiles, or refuses,
    what does not fit in memory)."""
    dev = resolve_device(device)
    return Limits(device=dev.type, preview_side=256, full_pixels=MAX_OUTPUT_PIXELS,
                  input_pixels=input_pixels or MAX_INPUT_PIXELS, concurrency=1, chunk=None,
                  stats_max_queries=STATS_MAX_QUERIES, cache_bytes=0, job_seconds=math.inf, shared=False)


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 1e5 else f"{pixels / 1e6:.2f} MP"


# --------------------------------------------------------------------------------------------
# Scales, regions, ground truth
# --------------------------------------------------------------------------------------------
def parse_scale(scale: object, vertical: object = None) -> tuple[float, float]:
    """Horizontal ``scale`` and optional ``vertical`` scale (None or 0: the same) -> ``(sy, sx)``."""
    if scale is None or scale == "":
        raise DemoError("choose a scale between 1 and 30")
    if vertical is None or vertical == "" or vertical == 0:
        vertical = scale
    try:
        sy, sx = validate_scale((_number(vertical), _number(scale)))
    except ValueError as exc:
        raise DemoError(f"invalid scale: {exc}") from None
    return sy, sx


def _number(value: object) -> object:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def scale_text(scale: tuple[float, float]) -> str:
    sy, sx = scale
    return f"×{sx:g}" if sy == sx else f"×{sx:g} (horizontal) × {sy:g} (vertical)"


def ground_truth_pair(hr: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR crop) for a scale per axis, as :func:`hiif.evaluate.make_pair` does for one scale:
    ``h_lr = floor(H/sy)``, the HR cropped top-left to ``round(h_lr·sy) × round(w_lr·sx)``, the LR
    Pillow's (antialiased) bicubic of that crop."""
    sy, sx = scale
    h_lr = math.floor(hr.shape[0] / sy + 1e-9)
    w_lr = math.floor(hr.shape[1] / sx + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise DemoError(f"the image ({hr.shape[1]}×{hr.shape[0]}) is too small to downsample by "
                        f"{scale_text(scale)}; use a smaller scale or a larger image")
    crop = np.ascontiguousarray(hr[:round(h_lr * sy), :round(w_lr * sx)])
    lr = np.asarray(Image.fromarray(crop).resize((w_lr, h_lr), Image.BICUBIC))
    return lr, crop


def preview_region(out_hw: tuple[int, int], budget: int,
                   centre: tuple[float, float] | None = None) -> tuple[int, int, int, int]:
    """The (top, left, height, width) region of an ``out_hw`` output to show: all of it when it has
    at most ``budget`` pixels, else a near-square region of at most ``budget`` pixels around
    ``centre`` = (fy, fx), fractions of the output's height and width (default: the middle),
    kept inside the output."""
    H, W = out_hw
    if H * W <= budget:
        return 0, 0, H, W
    side = max(1, math.isqrt(budget))
    rh = min(H, side)
    rw = min(W, max(1, budget // rh))
    rh = min(H, max(1, budget // rw))
    fy, fx = centre if centre is not None else (0.5, 0.5)
    fy = 0.5 if not _finite(fy) else min(max(float(fy), 0.0), 1.0)
    fx = 0.5 if not _finite(fx) else min(max(float(fx), 0.0), 1.0)
    top = min(max(round(fy * H - rh / 2), 0), H - rh)
    left = min(max(round(fx * W - rw / 2), 0), W - rw)
    return top, left, rh, rw


def _finite(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def click_to_centre(index: object, image_hw: tuple[int, int]) -> tuple[float, float]:
    """Gradio's select index ``[x, y]`` (pixels of the shown input) -> centre fractions (fy, fx)."""
    try:
        x, y = (float(v) for v in index)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 0.5, 0.5
    h, w = image_hw
    return (min(max((y + 0.5) / h, 0.0), 1.0), min(max((x + 0.5) / w, 0.0), 1.0))


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as shown (EXIF rotation applied), reading the header only."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated by 90°
                w, h = h, w
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise DemoError(f"cannot read the image ({type(exc).__name__})") from None
    return h, w


def region_metrics(pred: np.ndarray, gt: np.ndarray, region: tuple[int, int, int, int],
                   out_hw: tuple[int, int], shave: int) -> tuple[float, float]:
    """PSNR (Y channel) and SSIM of ``pred`` (the rendered region) against the whole ground truth
    ``gt``, leaving out ``shave`` pixels at the borders of the whole image (benchmark protocol)."""
    top, left, rh, rw = region
    H, W = out_hw
    t = max(0, shave - top)
    lft = max(0, shave - left)
    b = max(0, top + rh - (H - shave))
    r = max(0, left + rw - (W - shave))
    if rh - t - b < 1 or rw - lft - r < 1:
        return float("nan"), float("nan")
    p = pred[t:rh - b, lft:rw - r]
    g = gt[top + t:top + rh - b, left + lft:left + rw - r]
    return psnr(p, g, y_channel=True), ssim(p, g)


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One comparison to render: everything derived from the user's input."""

    backbone: str
    mode: str
    scale: tuple[float, float]  # (sy, sx)
    lr: InputImage  # the encoder input
    gt: np.ndarray | None  # ground truth (HR crop) in "Ground truth" mode
    out_hw: tuple[int, int]
    region: tuple[int, int, int, int]
    centre: tuple[float, float]
    name: str  # file-name stem of the input
    source: InputImage | None = None  # the whole picture, when only a crop of it fitted the server
    crop: tuple[int, int, int, int] | None = None  # (top, left, height, width) of that crop in it
    input_limit: int = 0  # pixels the server encodes for this backbone (what the crop was sized to)

    @property
    def full(self) -> bool:
        return self.region == (0, 0, *self.out_hw)

    @property
    def out_pixels(self) -> int:
        return self.out_hw[0] * self.out_hw[1]

    def describe(self) -> str:
        (H, W), (top, left, rh, rw) = self.out_hw, self.region
        lr_h, lr_w = self.lr.size
        text = f"{lr_w}×{lr_h} → {W}×{H} ({scale_text(self.scale)}, {megapixels(H * W)})"
        if self.mode == "Ground truth":
            text = f"ground truth {W}×{H} downsampled to {lr_w}×{lr_h} (bicubic), restored {scale_text(self.scale)}"
        if self.crop is not None:
            ct, cl, ch, cw = self.crop
            sh, sw = self.source.size
            after = " after downsampling" if self.mode == "Ground truth" else ""
            text = (f"the {sw}×{sh} image is more than this server encodes with {self.backbone} "
                    f"({megapixels(self.input_limit)}{after}): its {cw}×{ch} part at x {cl}–{cl + cw}, "
                    f"y {ct}–{ct + ch}, " + text)
        if self.full:
            return text + "; whole output shown"
        return (text + f"; showing the {rw}×{rh} region at x {left}–{left + rw}, y {top}–{top + rh} "
                "(click the input to move it)")


def safe_stem(path: object) -> str:
    stem = Path(str(path)).stem if path else "image"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "image"
    return stem[:60]


def plan_job(image: object, backbone: str, scale: object, vertical: object = None,
             mode: str = "Upscale", centre: tuple[float, float] | None = None,
             budget: int | None = None, limits: Limits | None = None, name: str | None = None) -> Job:
    """Validate the user's input and decide what to render (the region of at most ``budget``
    pixels, default the device's preview size squared)."""
    limits = limits or device_limits()
    if backbone not in BACKBONES:
        raise DemoError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if mode not in MODES:
        raise DemoError(f"unknown mode {mode!r}; choose {' or '.join(repr(m) for m in MODES)}")
    if image is None or (isinstance(image, str) and not image):
        raise DemoError("upload an image first (or pick one of the examples)")
    sy, sx = parse_scale(scale, vertical)
    try:
        img = load_image(image)
    except ImageError as exc:
        raise DemoError(f"cannot use this image: {exc}") from None
    centre = centre or (0.5, 0.5)
    most = limits.input_pixels_for(backbone)
    H, W = img.size
    ground_truth = mode == "Ground truth"
    encoded_pixels = math.floor(H / sy + 1e-9) * math.floor(W / sx + 1e-9) if ground_truth else H * W
    crop, source = None, None
    if encoded_pixels > most:
        # Too large to encode here: compare the part around the chosen point, as large as this server
        # encodes (in ground-truth mode: whose downsampled image is), and keep the whole picture for
        # the figure's overview.
        crop = preview_region((H, W), int(most * sy * sx) if ground_truth else most, centre)
        top, left, ch, cw = crop
        source = img
        img = InputImage(img.rgb[top:top + ch, left:left + cw],
                         None if img.alpha is None else img.alpha[top:top + ch, left:left + cw], img.icc)
        centre = (min(max((centre[0] * H - top) / ch, 0.0), 1.0), min(max((centre[1] * W - left) / cw, 0.0), 1.0))
    gt = None
    if ground_truth:
        lr_rgb, gt = ground_truth_pair(img.rgb, (sy, sx))
        lr = InputImage(lr_rgb, None)
    else:
        lr = img
    h, w = lr.size
    assert h * w <= most, (lr.size, most)
    out_hw = output_size((h, w), (sy, sx))
    if gt is not None:
        assert out_hw == gt.shape[:2], (out_hw, gt.shape)
    budget = budget or limits.preview_side ** 2
    region = preview_region(out_hw, budget, centre)
    return Job(backbone, mode, (sy, sx), lr, gt, out_hw, region, centre,
               safe_stem(name if name is not None else (image if isinstance(image, (str, Path)) else None)),
               source, crop, most)


def plan_text(image: object, backbone: str, scale: object, vertical: object = None, mode: str = "Upscale",
              centre: tuple[float, float] | None = None, budget: int | None = None,
              limits: Limits | None = None) -> str:
    """What Run will render for these inputs, shown before the first run so the user sees the
    output's size (and a problem with the input) before waiting for it; "" without an image."""
    if image is None or (isinstance(image, str) and not image):
        return ""
    try:
        job = plan_job(image, backbone, scale, vertical, mode, centre, budget, limits)
    except DemoError as exc:
        return f"⚠️ {exc}"
    return f"**Run** renders: **{job.backbone}** · {job.describe()}."


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
@dataclass
class ModelEntry:
    name: str  # zoo name, e.g. "hiif-rdn"
    method: str
    backbone: str  # UI label
    upscaler: Upscaler | None = None
    source: str | None = None  # the weights file
    origin: str = ""  # "ours, 1000 steps" / "official checkpoint"
    error: str | None = None  # why it is unavailable

    @property
    def available(self) -> bool:
        return self.upscaler is not None


@dataclass
class MethodResult:
    method: str
    model: str  # zoo name or "bicubic"
    image: np.ndarray | None  # the rendered region (RGB uint8)
    alpha: np.ndarray | None = None
    seconds: float = float("nan")
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    cached: bool = False  # encoder features came from the cache
    psnr: float = float("nan")
    ssim: float = float("nan")
    note: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.method]


@dataclass
class Comparison:
    job: Job
    results: dict[str, MethodResult] = field(default_factory=dict)

    def table(self) -> list[list[object]]:
        rows = []
        for method in ORDER:
            r = self.results.get(method)
            if r is None:
                continue
            if r.image is None:
                rows.append([r.label, f"{r.model} ({r.note or 'unavailable'})", "—", "—", "—"])
                continue
            t = f"{r.seconds:.2f}" + (" (features cached)" if r.cached and r.method != "bicubic" else "")
            rows.append([r.label, r.model, t,
                         f"{r.psnr:.2f}" if math.isfinite(r.psnr) else ("∞" if r.psnr == math.inf else "—"),
                         f"{r.ssim:.4f}" if math.isfinite(r.ssim) else "—"])
        return rows

    def pixels_per_second(self) -> dict[str, float]:
        (_, _, rh, rw) = self.job.region
        return {m: rh * rw / r.decode_seconds for m, r in self.results.items()
                if r.image is not None and r.decode_seconds > 0}

    def estimate_full_seconds(self) -> float | None:
        """Rough time for the whole output, from this region's decoding speed."""
        rates = self.pixels_per_second()
        if not rates:
            return None
        return sum(self.job.out_pixels / rate for rate in rates.values())

    def figure(self) -> Image.Image | None:
        """This comparison as one figure for slides: the input (ground-truth mode: the whole ground
        truth) with the region outlined, then the region from bicubic, LIIF, LTE and HIIF (and the
        ground truth's), captioned with the backbone (ground-truth mode: each one's PSNR / SSIM).
        None until every method has been rendered, or when none has an image."""
        job = self.job
        if any(m not in self.results for m in ORDER):
            return None
        panels = []
        for method in FIGURE_ORDER:
            r = self.results[method]
            if r.image is None:
                continue
            if job.gt is not None:
                caption = f"{r.psnr:.2f} dB · {r.ssim:.4f}" if math.isfinite(r.psnr) and math.isfinite(r.ssim) else ""
            else:
                caption = "" if method == "bicubic" else job.backbone
            panels.append(Panel(r.label, composite_on_white(r.image, r.alpha), caption))
        if not panels:
            return None
        top, left, rh, rw = job.region
        ct, cl = job.crop[:2] if job.crop is not None else (0, 0)  # where the compared part lies
        if job.gt is None:
            sy, sx = job.scale
            whole = job.source or job.lr
            overview = composite_on_white(whole.rgb, whole.alpha)
            box = (ct + top / sy, cl + left / sx, rh / sy, rw / sx)
            label, caption = "Input", f"{whole.size[1]}×{whole.size[0]}, {scale_text(job.scale)}"
        else:
            panels.append(Panel("Ground truth", np.ascontiguousarray(job.gt[top:top + rh, left:left + rw]),
                                "PSNR (Y) · SSIM" if len(panels) else ""))
            overview = job.gt if job.source is None else composite_on_white(job.source.rgb, job.source.alpha)
            box = (ct + top, cl + left, rh, rw)
            label = "Ground truth"
            caption = f"{overview.shape[1]}×{overview.shape[0]}, {scale_text(job.scale)}, {job.backbone}"
        shows_all = job.full and job.crop is None
        return figures.comparison_figure(panels, overview, None if shows_all else box, label, caption)


def _feature_bytes(encoded) -> int:
    feats = getattr(encoded, "features", None) or {}
    return sum(t.numel() * t.element_size() for t in feats.values())


class ModelSet:
    """The zoo models on one device, each with its Upscaler; safe for concurrent jobs."""

    def __init__(self, device: str | torch.device | None = None, limits: Limits | None = None,
                 names: Iterable[str] | None = None, loader: Callable = load_model,
                 log: Callable[[str], None] | None = None):
        self.device = resolve_device(device)
        self.limits = limits or device_limits(self.device)
        self.entries: dict[str, ModelEntry] = {}
        wanted = set(names) if names is not None else set(ZOO)
        for backbone, suffix in BACKBONES.items():
            for method in METHODS:
                name = f"{method}-{suffix}"
                entry = ModelEntry(name, method, backbone)
                self.entries[name] = entry
                if name not in wanted:
                    entry.error = "not loaded"
                    continue
                started = time.time()
                try:
                    model = loader(name, self.device)
                    entry.upscaler = Upscaler(model, self.device, chunk=self.limits.chunk, cache_size=2,
                                              stats_max_queries=self.limits.stats_max_queries)
                    entry.source = str(getattr(model, "source", "") or "")
                    entry.origin = _origin(getattr(model, "metadata", {}) or {})
                    if log:
                        log(f"{name}: {entry.origin} ({entry.source}, {time.time() - started:.1f}s)")
                except WeightsError as exc:
                    entry.error = str(exc)
                    if log:
                        log(f"{name}: {exc}")
                except Exception as exc:  # a broken file must not stop the demo
                    entry.error = f"{name}: could not load ({type(exc).__name__}: {exc})"
                    if log:
                        log(entry.error)
        self.bicubic = Upscaler("bicubic", self.device, cache_size=2)
        self._locks = {name: threading.Lock() for name in [*self.entries, "bicubic"]}
        self._ledger_lock = threading.Lock()
        self._last_used: dict[tuple[str, str], float] = {}

    # -- reporting -----------------------------------------------------------------------------
    def entry(self, backbone: str, method: str) -> ModelEntry:
        return self.entries[f"{method}-{BACKBONES[backbone]}"]

    def missing(self) -> list[str]:
        return [n for n, e in self.entries.items() if not e.available]

    def available_backbones(self) -> list[str]:
        return [b for b in BACKBONES if self.entry(b, "hiif").available]

    def device_text(self) -> str:
        if self.device.type == "cuda":
            return f"CUDA ({torch.cuda.get_device_name(self.device)})"
        threads = torch.get_num_threads()
        return f"CPU ({threads} thread{'s' if threads != 1 else ''})"

    def status_markdown(self) -> str:
        lim = self.limits
        side = lim.preview_side
        heavy_pixels = lim.input_pixels_for("RDN")
        heavy = f" ({megapixels(heavy_pixels)} with RDN and SwinIR)" if heavy_pixels < lim.input_pixels else ""
        lines = [
            f"**Device:** {self.device_text()} · torch {torch.__version__} — previews up to "
            f"{side}×{side} px per image, whole outputs up to {megapixels(lim.full_pixels)} on request, "
            f"inputs up to {megapixels(lim.input_pixels)}{heavy}, {lim.concurrency} job(s) at a time.",
            "",
            "| Backbone | HIIF | LIIF | LTE |",
            "| --- | --- | --- | --- |",
        ]
        for backbone in BACKBONES:
            cells = []
            for method in METHODS:
                e = self.entry(backbone, method)
                if e.available:
                    cells.append(f"{e.origin} (`{Path(e.source).name if e.source else e.name}`)")
                else:
                    cells.append("**missing**" if e.error and "not installed" in e.error else "**unavailable**")
            lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
        if any(e.available and e.origin.startswith("ours") for e in self.entries.values()):
            # a talk's comparison should not be read as the paper's numbers or backbone order
            lines += ["", "*ours*: this project's early models (hours of CPU or minutes of GPU training, "
                      "against the paper's ~1M GPU steps). They show how HIIF, LIIF and LTE differ on one "
                      "backbone, not the paper's scores or its backbone order; their Set5/Set14 PSNR is in "
                      "`weights/MODELS.md`."]
        broken = [e for e in self.entries.values() if not e.available and e.error
                   and "not installed" not in e.error and e.error != "not loaded"]
        for e in broken:
            lines += ["", f"Could not load {e.name}: {e.error}"]
        missing = self.missing()
        if missing:
            lines += ["", "Missing weights: " + ", ".join(f"`{n}`" for n in missing) + ". Put "
                      "`<name>.safetensors` (ours) or an official `<name>.pth` checkpoint into the "
                      "weights folder (`HIIF_WEIGHTS_DIR`, default `weights/`) and restart."]
        return "\n".join(lines)

    # -- encoding with a shared memory budget ----------------------------------------------------
    def _upscaler(self, name: str) -> Upscaler:
        return self.bicubic if name == "bicubic" else self.entries[name].upscaler  # type: ignore[return-value]

    def _encode(self, name: str, image: InputImage, progress: Callable[[int, int], None] | None = None):
        up = self._upscaler(name)
        before = {id(e) for e in up.cached().values()}
        encoded = up.encode(image, progress)
        cached = id(encoded) in before
        with self._ledger_lock:
            self._last_used[(name, encoded.key)] = time.monotonic()
        self._trim(keep=(name, encoded.key))
        return encoded, cached

    def _trim(self, keep: tuple[str, str]) -> None:
        """Drop the least recently used encoded features (any model) beyond the memory budget."""
        with self._ledger_lock:
            items = []
            for name in [*self.entries, "bicubic"]:
                up = self._upscaler(name) if name == "bicubic" or self.entries[name].available else None
                if up is None:
                    continue
                for key, enc in up.cached().items():
                    items.append((self._last_used.get((name, key), 0.0), name, key, _feature_bytes(enc)))
            total = sum(i[3] for i in items)
            for _, name, key, size in sorted(items):
                if total <= self.limits.cache_bytes:
                    break
                if (name, key) == keep:
                    continue
                lock = self._locks[name]
                if not lock.acquire(blocking=False):
                    continue  # in use by another job: leave it
                try:
                    self._upscaler(name).evict(key)
                    self._last_used.pop((name, key), None)
                    total -= size
                finally:
                    lock.release()

    def cached_bytes(self) -> int:
        total = 0
        for name in [*self.entries, "bicubic"]:
            up = self._upscaler(name) if name == "bicubic" or self.entries[name].available else None
            for enc in (up.cached().values() if up is not None else ()):
                total += _feature_bytes(enc)
        return total

    # -- comparisons -------------------------------------------------------------------------------
    def compare(self, job: Job, progress: Progress | None = None,
                methods: Iterable[str] = ORDER) -> Comparison:
        """Render ``job.region`` with each method (HIIF first); missing models give empty results."""
        comparison = Comparison(job)
        for comparison in self.compare_iter(job, progress, methods):
            pass
        return comparison

    def compare_iter(self, job: Job, progress: Progress | None = None,
                     methods: Iterable[str] = ORDER) -> Iterator[Comparison]:
        """Like :meth:`compare`, yielding the growing comparison after each method, so that a UI
        can show HIIF vs bicubic while LIIF and LTE are still rendering."""
        hiif_entry = self.entry(job.backbone, "hiif")
        if not hiif_entry.available:
            raise DemoError(f"{job.backbone}: HIIF weights are not available ({hiif_entry.error}); "
                            f"available backbones: {', '.join(self.available_backbones()) or 'none'}")
        methods = [m for m in ORDER if m in set(methods)]
        # Decoding checks the clock at every chunk (an encoder call is bounded by the input limit).
        deadline = time.monotonic() + self.limits.job_seconds
        weights = {"hiif": 0.4, "bicubic": 0.04, "liif": 0.28, "lte": 0.28}
        total_w = sum(weights[m] for m in methods)
        done_w = 0.0
        comparison = Comparison(job)
        for method in methods:
            share = weights[method] / total_w
            start_f = done_w

            def report(fraction: float, desc: str, _s=start_f, _share=share) -> None:
                if time.monotonic() > deadline:
                    raise DemoError(f"stopped after the time limit of {self.limits.job_seconds:.0f} s per "
                                    f"request; try a smaller preview, scale or input")
                if progress is not None:
                    progress(min(1.0, _s + _share * fraction), desc)

            comparison.results[method] = self._render_one(job, method, report)
            done_w += share
            if progress is not None and method == methods[-1]:
                progress(1.0, "done")
            yield comparison

    def zoom(self, job: Job, versus: str = "bicubic", progress: Progress | None = None):
        """A zoom animation (:mod:`hiif.animation`) of HIIF against ``versus`` (``bicubic``,
        ``liif`` or ``lte``, on the job's backbone) into the job's centre, from ×1 (or where the
        frame is filled) up to the job's scale, in ``ZOOM_FRAMES_APP`` frames of the device's
        zoom side; stopped, like a comparison, past the time limit."""
        from .animation import plan_zoom, render_zoom

        if versus not in ("bicubic", *METHODS) or versus == "hiif":
            raise DemoError(f"zoom HIIF against bicubic, liif or lte, not {versus!r}")
        sy, sx = job.scale
        if sy != sx:
            raise DemoError("a zoom has one scale for both axes: untick the separate vertical scale")
        methods, names = [], []  # (label, model) as the frames show them: HIIF on the right
        for method in (versus, "hiif"):
            if method == "bicubic":
                methods.append((LABELS["bicubic"], None))
                names.append("bicubic")
                continue
            entry = self.entry(job.backbone, method)
            if not entry.available:
                raise DemoError(f"{LABELS[method]}-{job.backbone}: weights not available ({entry.error})")
            methods.append((f"{LABELS[method]}-{job.backbone}", entry.upscaler.model))
            names.append(entry.name)
        h, w = job.lr.size
        fy, fx = job.centre
        centre = (min(fx * w, w - 1e-3), min(fy * h, h - 1e-3))
        # frames no larger than the input, so that the zoom starts at ×1 (never below 16 px)
        side = max(16, min(ZOOM_SIDE_APP.get(self.device.type, ZOOM_SIDE_APP["cpu"]), h, w))
        plan = plan_zoom(job.lr, sx, centre, side, ZOOM_FRAMES_APP)
        deadline = time.monotonic() + self.limits.job_seconds

        def report(fraction: float, text: str) -> None:
            if time.monotonic() > deadline:
                raise DemoError(f"stopped after the time limit of {self.limits.job_seconds:.0f} s per "
                                "request; try a smaller scale or input")
            if progress is not None:
                progress(fraction, text)

        locks = [self._locks[n] for n in sorted(set(names))]  # one order: two zooms never deadlock
        for lock in locks:
            lock.acquire()
        try:
            return render_zoom(plan, methods, self.device, chunk=self.limits.chunk, progress=report)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _render_one(self, job: Job, method: str, report: Callable[[float, str], None]) -> MethodResult:
        if method == "bicubic":
            name, label = "bicubic", "Bicubic"
        else:
            entry = self.entry(job.backbone, method)
            if not entry.available:
                return MethodResult(method, entry.name, None, note="weights not installed"
                                    if entry.error and "not installed" in entry.error else "unavailable")
            name, label = entry.name, f"{LABELS[method]}-{job.backbone}"
        up = self._upscaler(name)
        region = None if job.full else job.region
        with self._locks[name]:
            try:
                t0 = time.perf_counter()
                h, w = job.lr.size
                report(0.0, f"{label}: encoding {w}×{h}" + (" (minutes on CPU)" if
                                                              self.device.type == "cpu" and h * w > 250_000 else ""))
                def tile_done(done: int, total: int) -> None:  # large inputs: encoded in tiles
                    report(0.0, f"{label}: encoding {w}×{h}, tile {done} of {total}")

                encoded, cached = self._encode(name, job.lr, tile_done)
                t1 = time.perf_counter()

                def tick(done: int, total: int) -> None:
                    report(done / max(total, 1), f"{label}: decoding")

                rgb = up.render(encoded, job.scale, region, progress=tick)
                alpha = up.render_alpha(encoded, job.scale, region)
                t2 = time.perf_counter()
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                raise DemoError(f"{label}: out of GPU memory; try a smaller input or preview") from None
            except MemoryError as exc:
                # the library's own one-line reason (e.g. what input size would fit), if it gave one
                text = str(exc).strip()
                reason = text.splitlines()[0] if text else "out of memory; try a smaller input or preview"
                raise DemoError(f"{label}: {reason}") from None
            except RuntimeError as exc:
                if is_out_of_memory(exc):
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    raise DemoError(f"{label}: out of memory; try a smaller input or preview") from None
                raise
        result = MethodResult(method, name, rgb, alpha, seconds=t2 - t0, encode_seconds=t1 - t0,
                              decode_seconds=t2 - t1, cached=cached)
        if job.gt is not None:
            shave = math.ceil(max(job.scale) - 1e-9)
            result.psnr, result.ssim = region_metrics(rgb, job.gt, job.region, job.out_hw, shave)
        return result


def point_in(center: object, size: tuple[int, int]) -> tuple[float, float]:
    """``center`` as (x, y) pixels inside an image of ``size`` (height, width), or a DemoError."""
    h, w = size
    try:
        x, y = (float(v) for v in center)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise DemoError(f"the centre must be (x, y) in pixels of the image, got {center!r}") from None
    if not (0 <= x < w and 0 <= y < h):
        raise DemoError(f"the centre ({x:g}, {y:g}) is outside the {w}×{h} image")
    return x, y


#: sides (output pixels) of the region :func:`compare` renders
COMPARE_SIDES = (16, 2048)


def figure_side(size: object) -> int:
    """The side (output pixels) of a compared region: a whole number within ``COMPARE_SIDES``."""
    low, high = COMPARE_SIDES
    try:
        side = float(size)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        side = float("nan")
    if isinstance(size, bool) or not side.is_integer() or not low <= side <= high:
        raise DemoError(f"the region side must be a whole number of {low} to {high} output pixels, got {size!r}")
    return int(side)


def compare(image: object, scale: object, backbone: str = "edsr", *,
            center: tuple[float, float] | None = None, size: int = 256, ground_truth: bool = False,
            max_input_pixels: int | None = None, device: str | torch.device | None = None,
            progress: Progress | None = None) -> Comparison:
    """Bicubic, LIIF, LTE and HIIF on one ``backbone`` (``edsr``, ``rdn``, ``swinir`` or the demo's
    labels), on about ``size``² pixels of the output around ``center`` ((x, y) in pixels of
    ``image``; default its middle), for one user's own machine (:func:`local_limits`).

    ``scale``: a number or ``(sy, sx)``. ``ground_truth``: ``image`` is the high-resolution
    picture, downsampled by the scale (bicubic), restored and scored (PSNR on Y, SSIM). The result's
    ``figure()`` is the comparison figure, ``table()`` the times and scores. ``max_input_pixels``:
    encode at most this many input pixels (ground truth: after downsampling), i.e. a part of a
    larger image around ``center`` — much faster for a small region of a large photo, especially
    with RDN or SwinIR, but HIIF's attention statistics then cover that part's output, not the
    whole picture's. Bad input raises a one-line :class:`DemoError` before any model loads.
    """
    suffix = BACKBONES.get(backbone, backbone)
    labels = {v: k for k, v in BACKBONES.items()}
    if suffix not in labels:
        raise DemoError(f"unknown backbone {backbone!r}; choose one of {', '.join(labels)}")
    side = figure_side(size)
    if max_input_pixels is not None and (isinstance(max_input_pixels, bool) or not isinstance(max_input_pixels, int)
                                         or max_input_pixels < 1):
        raise DemoError(f"max_input_pixels must be a positive whole number, got {max_input_pixels!r}")
    sy, sx = scale if isinstance(scale, (tuple, list)) and len(scale) == 2 else (scale, scale)
    name = safe_stem(image if isinstance(image, (str, Path)) else None)
    try:
        img = load_image(image)
    except ImageError as exc:
        raise DemoError(f"cannot use this image: {exc}") from None
    centre = None if center is None else click_to_centre(point_in(center, img.size), img.size)
    limits = local_limits(device, max_input_pixels)
    job = plan_job(img, labels[suffix], sx, sy, "Ground truth" if ground_truth else "Upscale", centre,
                   budget=side * side, limits=limits, name=name)
    models = ModelSet(limits.device, limits, names=[f"{m}-{suffix}" for m in METHODS])
    return models.compare(job, progress)


#: the side (output pixels) of each method's square in the demo's zoom, by device, and its frames
ZOOM_SIDE_APP = {"cpu": 128, "cuda": 256}
ZOOM_FRAMES_APP = 24


#: sides (input pixels) of the window :func:`scale_sweep` renders
SWEEP_WINDOWS = (4, 512)
#: smallest and largest side (px) of a scale sweep's panels
SWEEP_PANEL_SIDES = (256, 512)


def scale_sweep(image: object, scales: Iterable[float], model: str = "hiif-edsr", *,
                center: tuple[float, float] | None = None, window: int = 32,
                device: str | torch.device | None = None,
                progress: Progress | None = None) -> Image.Image:
    """One model's output of the same ``window``×``window`` input pixels around ``center`` ((x, y) in
    pixels of ``image``; default its middle) at each of ``scales``, side by side after the input
    with the window outlined: what arbitrary-scale SR adds as the scale grows. Panels are shown at
    one size (nearest-neighbour), labelled with their scale. ``model``: a zoo name, a weights path
    or ``"bicubic"``. Each panel is the region of that scale's whole output (HIIF: with the whole
    output's attention statistics). Bad input raises a one-line :class:`DemoError` before the model
    loads."""
    if isinstance(scales, (str, bytes)):
        raise DemoError(f"scales must be a list of numbers, got {scales!r}")
    try:
        scales = [validate_scale(float(v))[0] for v in scales]
    except (TypeError, ValueError) as exc:
        raise DemoError(f"invalid scale: {exc}") from None
    if not 1 <= len(scales) <= 12:
        raise DemoError(f"give 1 to 12 scales, got {len(scales)}")
    low, high = SWEEP_WINDOWS
    if isinstance(window, bool) or not isinstance(window, int) or not low <= window <= high:
        raise DemoError(f"the window must be a whole number of {low} to {high} input pixels, got {window!r}")
    try:
        img = load_image(image)
    except ImageError as exc:
        raise DemoError(f"cannot use this image: {exc}") from None
    h, w = img.size
    x, y = (w / 2, h / 2) if center is None else point_in(center, img.size)
    wh, ww = min(window, h), min(window, w)
    top = min(max(round(y - wh / 2), 0), h - wh)
    left = min(max(round(x - ww / 2), 0), w - ww)
    dev = resolve_device(device)
    up = Upscaler("bicubic" if model == "bicubic" else load_model(model, dev), dev)
    label = model if model in ZOO or model == "bicubic" else Path(str(model)).stem
    encoded = up.encode(img)
    crops = []
    for i, value in enumerate(scales):
        H, W = output_size((h, w), value)
        r0, c0 = min(round(top * value), H - 1), min(round(left * value), W - 1)
        rh, rw = min(max(1, round(wh * value)), H - r0), min(max(1, round(ww * value)), W - c0)

        def tick(done: int, total: int, _i=i, _s=value) -> None:
            if progress is not None:
                progress((_i + done / max(total, 1)) / len(scales), f"{label} ×{_s:g}")

        rgb = up.render(encoded, value, (r0, c0, rh, rw), progress=tick)
        crops.append((value, composite_on_white(rgb, up.render_alpha(encoded, value, (r0, c0, rh, rw)))))
    if progress is not None:
        progress(1.0, "done")
    # one display size for all: the largest crop's, within SWEEP_PANEL_SIDES (enlarged with
    # nearest-neighbour so small scales show their pixels, reduced with a filter)
    largest = max(max(c.shape[:2]) for _, c in crops)
    side = min(max(largest, SWEEP_PANEL_SIDES[0]), SWEEP_PANEL_SIDES[1])
    panels = []
    for value, crop in crops:
        fit = side / max(crop.shape[:2])
        size = (max(1, round(crop.shape[1] * fit)), max(1, round(crop.shape[0] * fit)))
        resized = np.asarray(Image.fromarray(crop).resize(size, Image.NEAREST if fit >= 1 else Image.LANCZOS))
        square = np.full((side, side, 3), 255, np.uint8)  # a window cut by the border: centred on white
        y0, x0 = (side - resized.shape[0]) // 2, (side - resized.shape[1]) // 2
        square[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
        panels.append(Panel(f"×{value:g}", square, f"{crop.shape[1]}×{crop.shape[0]} px"))
    return figures.comparison_figure(panels, composite_on_white(img.rgb, img.alpha), (top, left, wh, ww),
                                     "Input", f"{w}×{h}, {label}")


def _origin(metadata: Mapping[str, str]) -> str:
    if metadata.get("origin") == "official checkpoint":
        return "official checkpoint"
    steps = metadata.get("steps")
    return f"ours, {steps} steps" if steps else "ours"


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------
class OutputDir:
    """PNG files for one server: a private temp folder, old jobs removed after ``max_age`` s."""

    def __init__(self, root: str | Path | None = None, max_age: float = 3600.0):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="hiif-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age

    def new_job(self) -> Path:
        now = time.time()
        for child in self.root.iterdir():
            try:
                if now - child.stat().st_mtime > self.max_age:
                    shutil.rmtree(child, ignore_errors=True)
            except OSError:
                pass
        path = self.root / uuid.uuid4().hex[:12]
        path.mkdir()
        return path


def file_stem(job: Job, model: str) -> str:
    sy, sx = job.scale
    tag = f"x{sx:g}" if sy == sx else f"x{sx:g}-y{sy:g}"
    stem = f"{job.name}_{tag}_{model}"
    if not job.full:
        top, left, rh, rw = job.region
        stem += f"_region-y{top}-x{left}-{rw}x{rh}"
    return stem


def save_png(rgb: np.ndarray, alpha: np.ndarray | None, path: Path) -> Path:
    image = Image.fromarray(rgb, "RGB") if alpha is None else Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    level = 1 if rgb.shape[0] * rgb.shape[1] > 4 * 2 ** 20 else 6  # big files: speed over size
    image.save(path, format="PNG", compress_level=level)
    return path


def save_results(comparison: Comparison, folder: Path,
                 done: Mapping[str, Path] | None = None, figure: bool = True) -> dict[str, Path]:
    """One PNG per rendered method (``<input>_x<scale>_<model>[_region…].png``), plus the LR input
    in ground-truth mode and, once every method is rendered, the comparison figure
    (``…_<backbone>-comparison….png``); files already in ``done`` are not written again."""
    paths: dict[str, Path] = dict(done or {})
    for method in ORDER:
        r = comparison.results.get(method)
        if r is None or r.image is None or method in paths:
            continue
        paths[method] = save_png(r.image, r.alpha, folder / f"{file_stem(comparison.job, r.model)}.png")
    job = comparison.job
    if job.gt is not None and "lr" not in paths:
        paths["lr"] = save_png(job.lr.rgb, None, folder / f"{file_stem(job, 'lr-input').split('_region')[0]}.png")
    if figure and "figure" not in paths:
        fig = comparison.figure()
        if fig is not None:
            name = f"{file_stem(job, BACKBONES[job.backbone] + '-comparison')}.png"
            paths["figure"] = save_png(np.asarray(fig), None, folder / name)
    return {k: paths[k] for k in (*ORDER, "lr", "figure") if k in paths}


#: the demo's zoom animations: frames a second, played forwards then backwards
ZOOM_FPS_APP = 8


def zoom_file(models: ModelSet, job: Job, versus: str, folder: Path,
              progress: Progress | None = None) -> tuple[Path, dict[str, object]]:
    """The demo's zoom (:meth:`ModelSet.zoom`) written as
    ``<input>_x<scale>_<backbone>-zoom-hiif-vs-<versus>.webp`` (played forwards and back), and
    what the page and the API say of it."""
    versus = str(versus).lower()
    zoom = models.zoom(job, versus, progress)
    name = f"{job.name}_x{job.scale[1]:g}_{BACKBONES[job.backbone]}-zoom-hiif-vs-{versus}.webp"
    path = zoom.save(folder / name, fps=ZOOM_FPS_APP, bounce=True)
    first = zoom.frames[0]
    return path, {"scales": zoom.scales, "frames": len(zoom.frames), "fps": ZOOM_FPS_APP,
                  "frame_size": {"height": first.height, "width": first.width},
                  "methods": list(zoom.crops), "backbone": job.backbone, "device": models.device_text()}


def full_render_offer(comparison: Comparison, limits: Limits) -> tuple[bool, str]:
    """Whether a whole-output render can be offered, and the button/explanation text."""
    job = comparison.job
    (H, W) = job.out_hw
    if job.full:
        return False, f"The whole {W}×{H} output is shown; its PNGs are in the downloads."
    if job.out_pixels > limits.full_pixels:
        return False, (f"The whole output ({W}×{H} = {megapixels(job.out_pixels)}) exceeds this "
                       f"{limits.device.upper()} server's {megapixels(limits.full_pixels)} limit: "
                       "regions only (click the input to choose one).")
    eta = comparison.estimate_full_seconds()
    eta_text = f", about {_duration(eta)}" if eta else ""
    return True, f"Render the whole {W}×{H} output ({megapixels(job.out_pixels)}{eta_text})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def whole_job(job: Job, limits: Limits) -> Job:
    """The same job over the whole output (checked against the device's full-render limit)."""
    if job.out_pixels > limits.full_pixels:
        H, W = job.out_hw
        raise DemoError(f"the whole output ({W}×{H} = {megapixels(job.out_pixels)}) exceeds this "
                        f"{limits.device.upper()} server's limit of {megapixels(limits.full_pixels)}; "
                        "render regions instead")
    return dataclasses.replace(job, region=(0, 0, *job.out_hw))


def api_info(comparison: Comparison, models: ModelSet) -> dict[str, object]:
    """The JSON the API returns next to the images."""
    job = comparison.job
    return {
        "output_size": {"height": job.out_hw[0], "width": job.out_hw[1]},
        "scale": {"vertical": job.scale[0], "horizontal": job.scale[1]},
        "mode": job.mode,
        "backbone": job.backbone,
        "full": job.full,
        "region": dict(zip(("top", "left", "height", "width"), job.region)),
        # the part of a larger input that was compared (None: all of it), in its pixels
        "input_crop": dict(zip(("top", "left", "height", "width"), job.crop)) if job.crop else None,
        "device": models.device_text(),
        "methods": {
            m: {"model": r.model, "available": r.image is not None, "seconds": _json_float(r.seconds),
                "features_cached": r.cached, "psnr": _json_float(r.psnr), "ssim": _json_float(r.ssim),
                "note": r.note}
            for m, r in comparison.results.items()
        },
    }


def _json_float(v: float) -> float | None:
    return round(v, 4) if math.isfinite(v) else None
