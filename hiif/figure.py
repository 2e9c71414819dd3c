"""Comparison figures for slides and papers: the input with the compared region outlined, then the
same region from each method side by side, each labelled (and scored when the ground truth is known).

    fig = comparison_figure([Panel("Bicubic", a), Panel("HIIF", b, "31.20 dB")],
                            overview=lr_rgb, box=(top, left, height, width))
    fig.save("figure.png")

Crops are enlarged by whole factors with nearest-neighbour sampling, never interpolated, so that the
figure shows the pixels each method produced (the convention of SR papers' figures); only crops
longer than ``MAX_PANEL_SIDE`` are reduced to fit, which hides fine differences: compare smaller
regions for that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: panels are enlarged (whole factors) until their shorter side has at least this many pixels
MIN_PANEL_SIDE = 256
#: ... but never beyond this many pixels on their longer side
MAX_PANEL_SIDE = 1024
#: the figure wraps into rows beyond this width (px)
MAX_FIGURE_WIDTH = 2600
GAP = 8
BOX_COLOUR = (230, 30, 30)
TEXT_COLOUR = (20, 20, 20)
CAPTION_COLOUR = (90, 90, 90)


@dataclass(frozen=True)
class Panel:
    """One labelled image of a figure: ``label`` (e.g. "HIIF") above the optional ``caption``
    (e.g. "31.20 dB · 0.8876" or "hiif-edsr"), under an H×W×3 uint8 ``image``."""

    label: str
    image: np.ndarray
    caption: str = ""


def panel_size(height: int, width: int) -> tuple[int, int]:
    """The (height, width) a ``height``×``width`` crop is shown at: enlarged by the largest whole
    factor that keeps its longer side within ``MAX_PANEL_SIDE`` (up to the one that brings its
    shorter side to ``MIN_PANEL_SIDE``); a crop already longer than that is reduced to fit it."""
    longest = max(1, height, width)
    if longest > MAX_PANEL_SIDE:
        fit = MAX_PANEL_SIDE / longest
        return max(1, round(height * fit)), max(1, round(width * fit))
    zoom = max(1, math.ceil(MIN_PANEL_SIDE / max(1, min(height, width))))
    zoom = max(1, min(zoom, MAX_PANEL_SIDE // longest))
    return height * zoom, width * zoom


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's own scalable font (needs FreeType)
    except (TypeError, ValueError, OSError):
        return ImageFont.load_default()


def _line_height(draw: ImageDraw.ImageDraw, font) -> int:
    return draw.textbbox((0, 0), "Ag", font=font)[3]  # ascender to descender


def _centred_text(draw: ImageDraw.ImageDraw, at: tuple[float, float], text: str, font,
                  colour: tuple[int, int, int]) -> None:
    """``text`` centred horizontally on ``at`` (its top); measured, not anchored, because Pillow's
    fallback bitmap font supports no anchors."""
    text = text.replace("×", "x")  # Pillow's built-in font has no multiplication sign
    width = draw.textlength(text, font=font)
    draw.text((round(at[0] - width / 2), round(at[1])), text, fill=colour, font=font)


def _overview(image: np.ndarray, box: tuple[float, float, float, float] | None,
              cell: tuple[int, int], line: int) -> Image.Image:
    """``image`` fitted inside ``cell`` (height, width) keeping its aspect, with ``box`` (top, left,
    height, width in ``image``'s pixels) outlined."""
    h, w = image.shape[:2]
    fit = min(cell[0] / h, cell[1] / w)
    size = (max(1, round(w * fit)), max(1, round(h * fit)))
    resample = Image.NEAREST if fit >= 2 else Image.LANCZOS
    shown = Image.fromarray(image).resize(size, resample)
    if box is not None:
        top, left, bh, bw = box
        x0, y0 = left * fit, top * fit
        x1, y1 = (left + bw) * fit - 1, (top + bh) * fit - 1
        # keep the outline visible (at least a few pixels wide and inside the picture)
        x0, y0 = min(max(0.0, x0), size[0] - 1), min(max(0.0, y0), size[1] - 1)
        x1, y1 = min(max(x0 + line, x1), size[0] - 1), min(max(y0 + line, y1), size[1] - 1)
        ImageDraw.Draw(shown).rectangle((round(x0), round(y0), round(x1), round(y1)),
                                        outline=BOX_COLOUR, width=line)
    return shown


def comparison_figure(panels: Sequence[Panel], overview: np.ndarray | None = None,
                      box: tuple[float, float, float, float] | None = None,
                      overview_label: str = "Input", overview_caption: str = "") -> Image.Image:
    """A figure of ``panels`` (the same region from several methods, all the same size) side by
    side in the given order, after an optional ``overview`` image (the input) with ``box`` (top,
    left, height, width in the overview's pixels) outlined; rows wrap beyond
    ``MAX_FIGURE_WIDTH``. Returns an RGB image."""
    if not panels:
        raise ValueError("a comparison figure needs at least one panel")
    h, w = panels[0].image.shape[:2]
    for p in panels:
        if p.image.shape[:2] != (h, w) or p.image.ndim != 3 or p.image.shape[2] != 3:
            raise ValueError(f"panels must all be {h}×{w}×3 images; {p.label} is {p.image.shape}")
    ph, pw = panel_size(h, w)
    label_size = max(14, min(28, pw // 12))
    label_font, caption_font = _font(label_size), _font(max(11, label_size * 3 // 4))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h, caption_h = _line_height(probe, label_font), _line_height(probe, caption_font)
    has_caption = bool(overview_caption) or any(p.caption for p in panels)
    text_h = GAP + line_h + (GAP // 2 + caption_h if has_caption else 0) + GAP

    cells: list[tuple[Image.Image, str, str]] = []
    if overview is not None:
        line = max(2, round(max(ph, pw) / 160))
        cells.append((_overview(overview, box, (ph, pw), line), overview_label, overview_caption))
    for p in panels:
        shown = Image.fromarray(p.image)
        if (ph, pw) != (h, w):  # enlarged: pixels as they are; reduced (large crops): filtered
            shown = shown.resize((pw, ph), Image.NEAREST if ph > h else Image.LANCZOS)
        cells.append((shown, p.label, p.caption))

    columns = max(1, min(len(cells), (MAX_FIGURE_WIDTH + GAP) // (pw + GAP)))
    rows = math.ceil(len(cells) / columns)
    figure = Image.new("RGB", (columns * pw + (columns + 1) * GAP, rows * (ph + text_h) + GAP), "white")
    draw = ImageDraw.Draw(figure)
    for i, (shown, label, caption) in enumerate(cells):
        row, col = divmod(i, columns)
        x = GAP + col * (pw + GAP)
        y = GAP + row * (ph + text_h)
        figure.paste(shown, (x + (pw - shown.width) // 2, y + (ph - shown.height) // 2))
        ty = y + ph + GAP
        _centred_text(draw, (x + pw / 2, ty), label, label_font, TEXT_COLOUR)
        if caption:
            _centred_text(draw, (x + pw / 2, ty + line_h + GAP // 2), caption, caption_font, CAPTION_COLOUR)
    return figure
