"""The PSNR-vs-scale plot of ``hiif.evaluate.plot_results`` (docs/psnr_*.png)."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from hiif.evaluate import plot_results

SCALES = [2, 3, 4, 6, 8, 12, 18, 24, 30]


def result(dataset, scales, models=("bicubic", "hiif-edsr", "lte-edsr")):
    return {"dataset": dataset, "protocol": "benchmark", "scales": scales,
            "psnr": {m: {f"{s:g}": 35.0 - 4 * np.log(s) + i for s in scales} for i, m in enumerate(models)}}


def test_plot_writes_a_png_whose_x_ticks_are_the_scales(tmp_path):
    path = tmp_path / "psnr.png"
    fig = plot_results([result("Set5", SCALES), result("Set14", [2, 3.5, 4])], path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 600  # two columns, PSNR and gain rows
    assert len(fig.axes) == 4
    canvas = FigureCanvasAgg(fig)  # the figure comes back closed: draw it again to measure its labels
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax, scales in zip(fig.axes, [SCALES, [2, 3.5, 4]] * 2):  # both rows
        assert ax.get_xscale() == "log"
        assert list(ax.get_xticks()) == [float(s) for s in scales]
        labels = ax.get_xticklabels()
        assert [t.get_text() for t in labels] == [f"×{s:g}" for s in scales]
        # no minor ticks, hence no minor labels (the log axis put one at ×20, between ×18 and ×24)
        assert list(ax.xaxis.get_minorticklocs()) == []
        assert all(not t.get_text() for t in ax.xaxis.get_minorticklabels())
        # readable: the labels drawn do not overlap one another
        boxes = [t.get_window_extent(renderer) for t in labels]
        for left, right in zip(boxes, boxes[1:]):
            assert left.x1 <= right.x0, (left, right)
        lo, hi = ax.get_xlim()
        assert lo < min(scales) and max(scales) < hi  # every tick inside the axis


def test_plot_ticks_cover_scales_only_some_models_have(tmp_path):
    r = result("Set5", [2, 4])
    r["psnr"]["extra"] = {"3": 30.0, "30": 20.0}
    fig = plot_results([r], tmp_path / "p.png")
    assert list(fig.axes[0].get_xticks()) == [2.0, 3.0, 4.0, 30.0]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["×2", "×3", "×4", "×30"]


def test_plot_second_row_is_each_models_gain_over_bicubic_in_its_own_colour(tmp_path):
    """Models a few hundredths of a dB apart overlap on the PSNR panel; the gain row separates them."""
    r = result("Set5", SCALES, models=("hiif-rdn", "bicubic", "lte-rdn"))
    r["psnr"]["lte-rdn"] = {s: v + 0.03 for s, v in r["psnr"]["hiif-rdn"].items()}
    fig = plot_results([r], tmp_path / "p.png")
    psnr_panel, gain_panel = fig.axes
    assert gain_panel.get_ylabel() == "gain over bicubic (dB)"
    colours = {line.get_label(): line.get_color() for line in psnr_panel.get_lines()}
    bicubic = r["psnr"]["bicubic"]
    gains = {line.get_label(): line for line in gain_panel.get_lines() if line.get_label() != "bicubic"}
    assert set(gains) == {"hiif-rdn", "lte-rdn"}
    for name, line in gains.items():
        assert list(line.get_xdata()) == [float(s) for s in SCALES]
        expected = [r["psnr"][name][f"{s:g}"] - bicubic[f"{s:g}"] for s in SCALES]
        assert np.allclose(line.get_ydata(), expected)
        assert line.get_color() == colours[name]
    assert np.allclose(gains["lte-rdn"].get_ydata() - gains["hiif-rdn"].get_ydata(), 0.03)


def test_plot_without_bicubic_has_one_row(tmp_path):
    fig = plot_results([result("Set5", [2, 4], models=("hiif-edsr", "lte-edsr"))], tmp_path / "p.png")
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "PSNR (dB)"
