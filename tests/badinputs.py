"""A corpus of bad or unusual inputs, generated (never downloaded). Each entry: a file (or array)
and what must happen: ``"ok"`` (a correct result) or ``"error"`` (a clear message)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(7)


def _rgb(h: int, w: int) -> np.ndarray:
    return (RNG.random((h, w, 3)) * 255).astype(np.uint8)


def png_bomb(path: Path, size: int = 30000) -> None:
    """A valid 1-bit PNG of size×size that is a few hundred KB on disk (zeros compress ~1000:1)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (size + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(size)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def build_corpus(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, expectation)."""
    folder.mkdir(parents=True, exist_ok=True)
    c: dict[str, tuple[Path, str]] = {}

    def save(name: str, image: Image.Image, fmt: str, expect: str = "ok", **kw) -> None:
        path = folder / f"{name}.{fmt.lower()}"
        image.save(path, format=fmt, **kw)
        c[name] = (path, expect)

    def raw(name: str, data: bytes, suffix: str, expect: str = "error") -> None:
        path = folder / f"{name}{suffix}"
        path.write_bytes(data)
        c[name] = (path, expect)

    base = Image.fromarray(_rgb(12, 16))
    good_png, good_jpg = io.BytesIO(), io.BytesIO()
    base.save(good_png, "PNG")
    base.save(good_jpg, "JPEG", quality=90)
    raw("text_file", b"hello, this is not an image\n" * 5, ".png")
    raw("empty_file", b"", ".png")
    raw("truncated_png", good_png.getvalue()[: len(good_png.getvalue()) // 2], ".png")
    raw("truncated_jpeg", good_jpg.getvalue()[: len(good_jpg.getvalue()) // 2], ".jpg")
    raw("png_magic_garbage", b"\x89PNG\r\n\x1a\n" + bytes(RNG.integers(0, 256, 300, dtype=np.uint8)), ".png")
    raw("html_named_jpg", b"<html><body>404</body></html>", ".jpg")
    bomb = folder / "bomb_30000.png"
    png_bomb(bomb)
    c["decompression_bomb"] = (bomb, "error")
    save("one_pixel", Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")
    save("rgba_alpha", Image.fromarray(np.dstack([_rgb(10, 14), np.tile(np.arange(14, dtype=np.uint8) * 18, (10, 1))]), "RGBA"), "PNG")
    save("grey_alpha", Image.fromarray(_rgb(10, 14)[..., 0]).convert("LA"), "PNG")
    save("palette", base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette_transparency", pal, "PNG", transparency=0)
    key = np.maximum(np.asarray(base), 40)  # no pixel below the key colour's rows matches it by chance
    key[:4] = (10, 20, 30)  # the top rows in the colour that the tRNS chunk makes transparent
    save("rgb_colour_key", Image.fromarray(key), "PNG", transparency=(10, 20, 30))
    save("grey_colour_key", Image.fromarray(key[..., 0]), "PNG", transparency=10)
    save("greyscale", base.convert("L"), "PNG")
    save("bilevel", base.convert("1"), "PNG")
    grey16 = Image.fromarray((RNG.random((10, 13)) * 65535).astype(np.uint16))
    save("greyscale_16bit", grey16, "PNG")
    save("cmyk_jpeg", base.convert("CMYK"), "JPEG", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    save("exif_rotated", Image.fromarray(_rgb(10, 20)), "JPEG", exif=exif.tobytes(), quality=95)
    frames = [Image.fromarray(_rgb(9, 11)) for _ in range(3)]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    c["animated_gif"] = (path, "ok")
    save("wide_strip", Image.fromarray(_rgb(2, 1500)), "PNG")
    save("tall_strip", Image.fromarray(_rgb(900, 1)), "PNG")
    save("float_tiff", Image.fromarray(RNG.random((8, 9)).astype(np.float32), "F"), "TIFF")
    save("webp", base, "WEBP", quality=90)
    save("bmp", base, "BMP")
    (folder / "a_directory.png").mkdir(exist_ok=True)
    c["directory"] = (folder / "a_directory.png", "error")
    c["missing_file"] = (folder / "does_not_exist.png", "error")
    return c


#: (scale, expectation) pairs for every entry point
SCALES = {"zero": (0, "error"), "negative": (-2, "error"), "nan": (float("nan"), "error"),
          "inf": (float("inf"), "error"), "above_30": (30.5, "error"), "below_1": (0.5, "error"),
          "axis_zero": ((2, 0), "error"), "exactly_30": (30, "ok"), "per_axis": ((2.5, 1.7), "ok")}

#: expected output size (W, H) at ×2 where a file is accepted, to check orientation handling
EXPECTED_SIZE_X2 = {"exif_rotated": (20, 40), "one_pixel": (2, 2), "wide_strip": (3000, 4),
                    "tall_strip": (2, 1800)}
