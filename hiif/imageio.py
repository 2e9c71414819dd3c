"""Reading user images safely and writing results.

Every problem with an input becomes an :class:`ImageError` (a ``ValueError``) with one clear line:
unreadable, truncated or empty files, decompression bombs, unsupported modes. Accepted inputs are
normalised to RGB uint8 (EXIF rotation applied; greyscale, palette, CMYK and 16-bit converted; an
alpha channel is returned separately so that it can be resized and put back).
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest input accepted, in pixels (also Pillow's decompression-bomb limit while we decode).
MAX_INPUT_PIXELS = 16_777_216  # 4096 × 4096

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]


class ImageError(ValueError):
    """An input image that cannot be used; the message says why in one line."""


@dataclass
class InputImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None = None  # (H, W) uint8, when the input had transparency

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def _from_array(array: np.ndarray) -> InputImage:
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"expected an H×W×3 image array, got shape {tuple(np.shape(array))}")
    if a.dtype == np.uint16:
        a = (a.astype(np.uint32) * 255 + 32767) // 65535
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError("image array contains NaN or infinite values")
        a = np.clip(a, 0, 1) * 255 + 0.5
    elif a.dtype == bool:
        a = a * 255
    elif a.dtype != np.uint8:
        raise ImageError(f"unsupported image array dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
    a = a.astype(np.uint8)
    alpha = a[:, :, 3].copy() if a.shape[2] == 4 else None
    rgb = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]
    _check_pixels(rgb.shape[0], rgb.shape[1])
    return InputImage(np.ascontiguousarray(rgb), alpha)


def _check_pixels(h: int, w: int) -> None:
    if h * w > MAX_INPUT_PIXELS:
        raise ImageError(f"image is {w}×{h} = {w * h / 1e6:.1f} MP; the limit is "
                         f"{MAX_INPUT_PIXELS / 1e6:.1f} MP")


def _from_pil(im: Image.Image) -> InputImage:
    _check_pixels(im.height, im.width)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block is not worth refusing the picture
        pass
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8)
        return _from_array(grey)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        return _from_array(np.clip(arr, 0, 1).astype(np.float32))
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
    rgba = im.convert("RGBA") if has_alpha else None
    rgb = np.asarray(im.convert("RGB"))
    alpha = np.asarray(rgba)[:, :, 3].copy() if rgba is not None else None
    if alpha is not None and alpha.min() == 255:
        alpha = None  # fully opaque: nothing to keep
    return InputImage(np.ascontiguousarray(rgb), alpha)


def load_image(source: ImageLike | InputImage) -> InputImage:
    """Any supported input -> :class:`InputImage`; raises :class:`ImageError` otherwise."""
    if isinstance(source, InputImage):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return _from_pil(source)
    if isinstance(source, (bytes, bytearray)):
        name, opener = "image data", lambda: io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: file is empty")
        opener = lambda: open(path, "rb")  # noqa: E731
    else:
        raise ImageError(f"unsupported image type {type(source).__name__}")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with opener() as fh, Image.open(fh) as im:
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)  # animated: the first frame
                im.load()
                return _from_pil(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: image too large ({exc}); limit {MAX_INPUT_PIXELS / 1e6:.1f} MP") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageError(f"{name}: image file is truncated or damaged ({text})") from None
        raise ImageError(f"{name}: cannot decode image ({text})") from None
    except MemoryError:
        raise ImageError(f"{name}: image too large to decode") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    if alpha is None:
        return Image.fromarray(rgb, "RGB")
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    path = Path(path)
    if not path.parent.is_dir():
        raise ImageError(f"{path.parent}: output folder does not exist")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown output format (use .png, .jpg, .webp, …)")
    if image.mode == "RGBA" and fmt in ("JPEG", "BMP"):
        image = image.convert("RGB")
    try:
        image.save(path, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write ({exc})") from None
