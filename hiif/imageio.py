"""Reading user images safely and writing results.

Every problem with an input becomes an :class:`ImageError` (a ``ValueError``) with one clear line:
unreadable, truncated or empty files, decompression bombs, unsupported modes. Accepted inputs are
normalised to RGB uint8 (EXIF rotation applied; greyscale, palette, CMYK and 16-bit converted; an
alpha channel is returned separately so that it can be resized and put back; an RGB ICC profile is
kept for the output).

Outputs are checked before any work (:func:`check_output`: folder, format, per-format size limits)
and written whole or not at all (:func:`atomic_write`).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest input accepted, in pixels (also Pillow's decompression-bomb limit while we decode).
MAX_INPUT_PIXELS = 16_777_216  # 4096 × 4096

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

#: file endings taken for images when a folder is listed (training, evaluation, `upscale DIR`)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

#: output formats we write, by Pillow format name (alpha: whether the format keeps transparency)
WRITABLE = {"PNG": True, "JPEG": False, "WEBP": True, "TIFF": True, "BMP": False}
#: formats Pillow could write that would spoil an upscaled picture, and why
REFUSED = {"GIF": "GIF keeps only 256 colours", "ICO": "icons are at most 256 px",
           "ICNS": "icons are at most 1024 px", "CUR": "cursors are at most 256 px"}
#: largest side each format can store (JPEG's 16-bit size fields, WebP's 14-bit ones)
MAX_SIDE = {"JPEG": 65_500, "WEBP": 16_383}
#: formats that carry an ICC profile through Pillow's ``icc_profile`` save option
ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")


class ImageError(ValueError):
    """An input image that cannot be used; the message says why in one line."""


@dataclass
class InputImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None = None  # (H, W) uint8, when the input had transparency
    icc: bytes | None = None  # the input's RGB ICC profile, carried to the output

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
        low, high = float(a.min()), float(a.max())
        if low < 0 or high > 1:  # clipping 0–255 data to [0, 1] would give a white picture
            raise ImageError(f"float image arrays must hold values in [0, 1], got {low:g} to {high:g} "
                             "(divide by 255, or pass uint8)")
        a = a * 255 + 0.5
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


def _rgb_profile(im: Image.Image) -> bytes | None:
    """The image's ICC profile when it describes RGB data (bytes 16–19 of the header: the colour
    space); CMYK or grey profiles do not fit the RGB picture we produce, so they are dropped."""
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and len(icc) >= 20 and icc[16:20] == b"RGB ":
        return icc
    return None


def _from_pil(im: Image.Image) -> InputImage:
    if im.width < 1 or im.height < 1:
        raise ImageError(f"image is empty ({im.width}×{im.height} pixels)")
    _check_pixels(im.height, im.width)
    icc = _rgb_profile(im)
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
    if mode in ("La", "RGBa"):  # premultiplied alpha: Pillow converts these only to LA / RGBA
        mode = {"La": "LA", "RGBa": "RGBA"}[mode]
        im = im.convert(mode)
    # a colour key (PNG tRNS on an RGB, grey or palette image) is transparency too
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode in ("P", "RGB", "L") and "transparency" in im.info)
    with warnings.catch_warnings():  # Pillow's advice to convert palette transparency to RGBA: we do
        warnings.simplefilter("ignore", UserWarning)
        rgba = im.convert("RGBA") if has_alpha else None
        rgb = np.asarray(im.convert("RGB"))
    alpha = np.asarray(rgba)[:, :, 3].copy() if rgba is not None else None
    if alpha is not None and alpha.min() == 255:
        alpha = None  # fully opaque: nothing to keep
    return InputImage(np.ascontiguousarray(rgb), alpha, icc)


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
        # Pillow's message quotes its own threshold (twice ours for the error): give only our limit
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:,.1f} MP, " if found else ""
        raise ImageError(f"{name}: image too large ({size}the limit is {MAX_INPUT_PIXELS / 1e6:.1f} MP)") from None
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


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None, icc: bytes | None = None) -> Image.Image:
    image = Image.fromarray(rgb, "RGB") if alpha is None else Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    if icc:
        image.info["icc_profile"] = icc
    return image


def check_output(path: str | os.PathLike, size: tuple[int, int] | None = None) -> str:
    """Check that an image can be written at ``path`` (``size``: its (height, width), if known)
    before any work is done: the folder exists and is writable, the extension is a format we
    write, and the size fits that format. Returns the Pillow format name; raises ImageError."""
    path = Path(path)
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt in REFUSED:
        raise ImageError(f"{path}: cannot write {ext} ({REFUSED[fmt]}); use .png")
    if fmt not in WRITABLE:
        raise ImageError(f"{path}: unknown output format {ext or '(no extension)'} "
                         "(use .png, .jpg, .webp, .tif or .bmp)")
    if size is not None and fmt in MAX_SIDE and max(size) > MAX_SIDE[fmt]:
        raise ImageError(f"{path}: a {size[1]}×{size[0]} image exceeds {fmt}'s limit of "
                         f"{MAX_SIDE[fmt]:,} px per side; use .png")
    check_writable(path)
    return fmt


def check_writable(path: str | os.PathLike) -> None:
    """``path`` can be created or replaced: its folder exists and accepts a new file (tried, since
    permission bits do not tell for root, read-only mounts or /proc), and it is not a folder."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ImageError(f"{folder}: output folder does not exist")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not a file name")
    probe = folder / f".{path.name}.{secrets.token_hex(4)}.probe"
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:
        raise ImageError(f"{folder}: cannot write there ({exc.strerror or exc})") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A file object for ``path`` that appears whole or not at all: the data goes to a temporary
    file in the same folder, renamed over ``path`` on success, removed on any error or Ctrl-C."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fh = open(tmp, "xb")  # default permissions (umask), unlike mkstemp's 0600
    try:
        with fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``rgb`` (H×W×3 uint8) composited over white where ``alpha`` (H×W uint8) is given: how an
    image with transparency is shown or written where transparency cannot be kept."""
    if alpha is None:
        return rgb
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.round(rgb.astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    """Write ``image`` (format from the extension, :func:`check_output`). Alpha is composited on
    white for formats without it (JPEG, BMP); the ICC profile in ``image.info`` is kept."""
    path = Path(path)
    fmt = check_output(path, (image.height, image.width))
    icc = image.info.get("icc_profile")
    if not WRITABLE[fmt] and (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        image = Image.fromarray(composite_on_white(rgba[..., :3], rgba[..., 3]), "RGB")
    options: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if icc and fmt in ICC_FORMATS:
        options["icc_profile"] = icc
    try:
        with atomic_write(path) as fh:
            image.save(fh, format=fmt, **options)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot write ({exc})") from None
