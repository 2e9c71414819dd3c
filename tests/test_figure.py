"""hiif.figure: comparison figures for slides (pixels shown as rendered, the region outlined)."""
from __future__ import annotations

import numpy as np
import pytest

from hiif import figure
from hiif.figure import GAP, Panel, comparison_figure, panel_size


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_panel_size_enlarges_by_whole_factors_and_reduces_only_large_crops():
    assert panel_size(64, 48) == (64 * 6, 48 * 6)  # shorter side to >= 256
    assert panel_size(256, 256) == (256, 256)
    assert panel_size(10, 200) == (50, 1000)  # capped by the longer side (1024)
    assert panel_size(2048, 1024) == (1024, 512)  # reduced to fit
    for h, w in [(1, 1), (3, 700), (100, 100), (1024, 1024), (4096, 10)]:
        ph, pw = panel_size(h, w)
        assert max(ph, pw) <= figure.MAX_PANEL_SIDE
        if max(h, w) <= figure.MAX_PANEL_SIDE:
            assert ph % h == 0 and pw % w == 0 and ph // h == pw // w  # one whole factor


def test_panels_show_the_exact_pixels_nearest_enlarged_in_order():
    crops = [rgb(32, 48, seed) for seed in range(3)]
    fig = np.asarray(comparison_figure([Panel(f"m{i}", c, "cap") for i, c in enumerate(crops)]))
    ph, pw = panel_size(32, 48)
    zoom = ph // 32
    assert fig.shape[1] == 3 * pw + 4 * GAP
    for i, crop in enumerate(crops):
        x = GAP + i * (pw + GAP)
        shown = fig[GAP:GAP + ph, x:x + pw]
        assert np.array_equal(shown, crop.repeat(zoom, 0).repeat(zoom, 1)), i
    below = fig[GAP + ph:, :]
    assert (below < 128).any()  # the labels are drawn under the panels


def test_overview_outlines_the_region():
    overview = np.full((100, 200, 3), 255, np.uint8)
    fig = np.asarray(comparison_figure([Panel("HIIF", rgb(64, 64))], overview, box=(20, 50, 40, 60)))
    ph, pw = panel_size(64, 64)
    fit = min(ph / 100, pw / 200)
    cell = fig[GAP:GAP + ph, GAP:GAP + pw]
    red = (cell[..., 0] > 200) & (cell[..., 1] < 80) & (cell[..., 2] < 80)
    ys, xs = np.nonzero(red)
    top = (ph - round(100 * fit)) // 2  # the overview is centred in its cell
    assert abs(ys.min() - (top + 20 * fit)) <= 1 and abs(ys.max() - (top + 60 * fit - 1)) <= 1
    assert abs(xs.min() - 50 * fit) <= 1 and abs(xs.max() - (110 * fit - 1)) <= 1
    # the inside of the box is the overview itself (white), not filled
    assert (cell[round(top + 40 * fit), round(80 * fit)] == 255).all()


def test_many_panels_wrap_into_rows():
    panels = [Panel(str(i), rgb(256, 256, i)) for i in range(12)]
    fig = comparison_figure(panels)
    columns = (figure.MAX_FIGURE_WIDTH + GAP) // (256 + GAP)
    assert fig.width == columns * 256 + (columns + 1) * GAP <= figure.MAX_FIGURE_WIDTH + GAP
    row_height = (fig.height - GAP) // 2  # two rows of panel + labels
    assert row_height > 256
    second_row = np.asarray(fig)[GAP + row_height:GAP + row_height + 256, GAP:GAP + 256]
    assert np.array_equal(second_row, panels[columns].image)


def test_bad_panels_are_refused():
    with pytest.raises(ValueError, match="at least one panel"):
        comparison_figure([])
    with pytest.raises(ValueError, match="B is"):
        comparison_figure([Panel("A", rgb(8, 8)), Panel("B", rgb(8, 9))])
