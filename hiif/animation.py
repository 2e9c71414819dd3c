"""Zoom animations for talks: one region of the input rendered at a continuous series of scales,
so that the audience sees what an arbitrary-scale model draws as the factor grows, optionally
beside another method, with the input and the shrinking window it shows beside them.

    zoom = hiif.zoom("photo.png", 8, "hiif-edsr", versus="bicubic", center=(410, 220))
    zoom.save("zoom.webp", fps=12, bounce=True)   # animated WebP, GIF or PNG (APNG)

Every frame is ``size``×``size`` pixels of that scale's whole output, what ``upscale`` writes there
(HIIF: with the attention statistics of the whole output, estimated on a sparser sub-grid than
``upscale`` uses, so that a frame costs seconds, not tens of seconds, on a CPU).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import figure as figures
from .demo import DemoError, Progress, point_in
from .engine import Upscaler, output_size, resolve_device, validate_scale
from .imageio import ImageError, InputImage, atomic_write, check_writable, composite_on_white, load_image
from .models import ImplicitSR
from .weights import ZOO, load_model

#: the side (output pixels) of each method's square in a frame
ZOOM_SIDES = (16, 512)
#: how many frames a zoom may have
ZOOM_FRAMES = (2, 240)
#: frames per second (browsers show GIF delays under 20 ms as 100 ms)
ZOOM_FPS = (1, 50)
#: the animated formats written, by extension
ANIMATION_FORMATS = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG"}
#: HIIF's attention statistics of a frame's whole output are estimated on a sub-grid of at most
#: this many positions (the engine's estimate, ≤ 0.003 of the 0–1 range from the exact ones:
#: benchmarks/RESULTS.md section 5; invisible in an animation): at ×8 of a 320×213 input a quarter
#: of the positions `upscale` takes, and a HIIF frame 4× faster (measured)
ZOOM_STATS_QUERIES = 262_144


def _whole(value: object, name: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise DemoError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def check_animation_output(path: str | Path) -> str:
    """The Pillow format of an animation written at ``path`` (its folder checked writable), or a
    one-line :class:`ImageError`."""
    path = Path(path)
    fmt = ANIMATION_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: an animation is written as .webp, .gif or .png (APNG), "
                         f"not {path.suffix or '(no extension)'}")
    check_writable(path)
    return fmt


def zoom_scales(first: float, last: float, frames: int) -> list[float]:
    """``frames`` scales from ``first`` to ``last`` in equal ratios: the zoom looks steady (each
    frame enlarges the last by the same factor)."""
    return [first * (last / first) ** (k / (frames - 1)) for k in range(frames)]


def frame_region(lr_size: tuple[int, int], scale: float, center: tuple[float, float],
                 side: int) -> tuple[int, int, int, int]:
    """The ``side``×``side`` region (top, left, height, width) of the output at ``scale`` centred,
    as far as the borders allow, on ``center`` ((x, y) in input pixels)."""
    h, w = lr_size
    H, W = output_size(lr_size, scale)
    x, y = center
    top = min(max(round(y * H / h - side / 2), 0), H - side)
    left = min(max(round(x * W / w - side / 2), 0), W - side)
    return top, left, side, side


@dataclass
class Zoom:
    """A zoom: per frame its scale, its window in the input (top, left, height, width in input
    pixels) and each method's ``size``×``size`` RGB crop (``crops``: label -> one crop per frame,
    in the order the frames show them), and the composed frames."""

    scales: list[float]
    windows: list[tuple[float, float, float, float]]
    crops: dict[str, list[np.ndarray]]
    frames: list[Image.Image]

    def save(self, path: str | Path, fps: int = 12, bounce: bool = False) -> Path:
        """Write the frames as a looping animation (format from the extension: .webp, .gif, .png);
        ``bounce`` plays them forwards then backwards, for a loop without a jump. The file
        appears whole or not at all."""
        fmt = check_animation_output(path)
        fps = _whole(fps, "fps", ZOOM_FPS)
        frames = self.frames + self.frames[-2:0:-1] if bounce else self.frames
        options = {"WEBP": {"quality": 90, "method": 4}, "GIF": {"optimize": False}, "PNG": {}}[fmt]
        with atomic_write(path) as fh:
            frames[0].save(fh, format=fmt, save_all=True, append_images=frames[1:],
                           duration=round(1000 / fps), loop=0, **options)
        return Path(path)


@dataclass(frozen=True)
class ZoomPlan:
    """What a zoom renders, checked: the input, the point zoomed into ((x, y) input pixels), the
    frame side and each frame's scale and output region."""

    image: InputImage
    center: tuple[float, float]
    side: int
    scales: list[float]
    regions: list[tuple[int, int, int, int]]


def plan_zoom(image: object, to: float = 8.0, center: tuple[float, float] | None = None,
              size: int = 256, frames: int = 48) -> ZoomPlan:
    """Check a zoom's arguments (:func:`zoom`) and plan its frames; a one-line
    :class:`DemoError` for bad input."""
    if isinstance(to, (tuple, list)):
        raise DemoError(f"a zoom has one scale for both axes, got {to!r}")
    try:
        to = validate_scale(to)[0]
    except ValueError as exc:
        raise DemoError(f"invalid scale: {exc}") from None
    side = _whole(size, "the frame size", ZOOM_SIDES)
    count = _whole(frames, "the number of frames", ZOOM_FRAMES)
    try:
        img = load_image(image)
    except ImageError as exc:
        raise DemoError(f"cannot use this image: {exc}") from None
    h, w = img.size
    point = (w / 2, h / 2) if center is None else point_in(center, img.size)
    first = max(1.0, side / h, side / w)  # the first frame is filled: round(h * side / h) = side
    if first >= to:
        raise DemoError(f"a {side}-px frame of this {w}×{h} image starts at ×{first:.3g}: zoom to more "
                        f"than that, or choose a smaller frame")
    scales = zoom_scales(first, to, count)
    return ZoomPlan(img, point, side, scales, [frame_region((h, w), s, point, side) for s in scales])


def render_zoom(plan: ZoomPlan, methods: Sequence[tuple[str, ImplicitSR | None]],
                device: str | torch.device | None = None, chunk: int | None = None,
                progress: Progress | None = None) -> Zoom:
    """The frames of ``plan`` with ``methods`` ((label, model), model None for bicubic), shown in
    that order. ``progress(fraction, text)`` may raise to stop the zoom between chunks."""
    dev = resolve_device(device)
    img, count = plan.image, len(plan.scales)
    h, w = img.size
    crops: dict[str, list[np.ndarray]] = {}
    for m, (label, model) in enumerate(methods):
        up = Upscaler("bicubic" if model is None else model, dev, chunk=chunk, cache_size=1,
                      stats_max_queries=ZOOM_STATS_QUERIES)
        encoded = up.encode(img)
        crops[label] = []
        for k, (s, region) in enumerate(zip(plan.scales, plan.regions)):
            def tick(done: int, total: int, _k=k, _s=s, _label=label, _m=m) -> None:
                if progress is not None:
                    progress((_m * count + _k + done / max(total, 1)) / (len(methods) * count), f"{_label} ×{_s:.2f}")
            tick(0, 1)
            rgb = up.render(encoded, s, region, progress=tick)
            crops[label].append(composite_on_white(rgb, up.render_alpha(encoded, s, region)))
        up.clear()
    if progress is not None:
        progress(1.0, "done")
    windows = []
    for s, (top, left, rh, rw) in zip(plan.scales, plan.regions):
        H, W = output_size((h, w), s)
        windows.append((top * h / H, left * w / W, rh * h / H, rw * w / W))
    # the input fitted once to the cell every frame shows it in, not resized again at each frame
    overview, fit = _reduced(composite_on_white(img.rgb, img.alpha), figures.panel_size(plan.side, plan.side))
    shown = []
    for k, (s, window) in enumerate(zip(plan.scales, windows)):
        panels = [figures.Panel(label, crops[label][k], f"×{s:.2f}") for label, _ in methods]
        box = tuple(v * fit for v in window)
        shown.append(figures.comparison_figure(panels, overview, box, "Input", f"{w}×{h}"))
    return Zoom(list(plan.scales), windows, crops, shown)


def zoom(image: object, to: float = 8.0, model: str = "hiif-edsr", *, versus: str | None = None,
         center: tuple[float, float] | None = None, size: int = 256, frames: int = 48,
         device: str | torch.device | None = None, progress: Progress | None = None) -> Zoom:
    """``model``'s output of the input around ``center`` ((x, y) in pixels of ``image``; default its
    middle) at ``frames`` scales rising in equal ratios up to ``to``, each frame ``size``×``size``
    output pixels; ``versus`` (a zoo name, a weights path or ``"bicubic"``) renders the same
    beside it, on the left. The zoom starts at the smallest scale whose output fills the frame
    (×1 when the input is at least ``size`` px on both sides). Each frame shows the input with the
    window outlined, then the methods, captioned with the scale. Bad input raises a one-line
    :class:`DemoError` before any model loads. HIIF frames also cost the attention statistics of
    their whole output (estimated on at most ``ZOOM_STATS_QUERIES`` positions)."""
    plan = plan_zoom(image, to, center, size, frames)
    names = [versus, model] if versus is not None else [model]
    for name in names:
        if not isinstance(name, (str, Path)):
            raise DemoError(f"a model is a zoo name, a weights path or 'bicubic', got {name!r}")
    labels = [str(n) if n in ZOO or n == "bicubic" else Path(str(n)).stem for n in names]
    if len(set(labels)) < len(labels):
        raise DemoError(f"zoom {labels[0]} against another model")
    dev = resolve_device(device)
    models = [None if n == "bicubic" else load_model(n, dev) for n in names]
    return render_zoom(plan, list(zip(labels, models)), dev, progress=progress)


def _reduced(rgb: np.ndarray, cell: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The input fitted inside ``cell`` (height, width), never enlarged, and its factor."""
    fit = min(1.0, cell[0] / rgb.shape[0], cell[1] / rgb.shape[1])
    if fit == 1.0:
        return rgb, 1.0
    size = (max(1, round(rgb.shape[1] * fit)), max(1, round(rgb.shape[0] * fit)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS)), fit
