"""Zoom animations (hiif.zoom, python -m hiif zoom): each frame is the region of that scale's whole
output, the scales rise in equal ratios, the window shown in the input shrinks with them, and bad
input is refused before any model loads."""
import numpy as np
import pytest
from PIL import Image

import hiif
import hiif.animation as animation
from hiif.cli import main
from hiif.demo import DemoError
from hiif.engine import Upscaler
from hiif.imageio import ImageError
from hiif.weights import load_model
from hiif.animation import frame_region, zoom_scales

RNG = np.random.default_rng(3)
PHOTO = (RNG.random((40, 60, 3)) * 255).astype(np.uint8)


def test_each_frame_is_the_region_of_that_scales_whole_output():
    result = hiif.zoom(PHOTO, 6, "liif-edsr", versus="bicubic", center=(45, 12), size=32, frames=5)
    assert list(result.crops) == ["bicubic", "liif-edsr"]  # the model compared against on the left
    assert result.scales[0] == 1 and result.scales[-1] == pytest.approx(6)
    ratios = np.diff(np.log(result.scales))
    assert np.allclose(ratios, ratios[0])  # a steady zoom: the same factor from frame to frame
    up = Upscaler(load_model("liif-edsr"))
    encoded = up.encode(PHOTO)
    for s, crop in zip(result.scales, result.crops["liif-edsr"]):
        region = frame_region((40, 60), s, (45, 12), 32)
        np.testing.assert_array_equal(crop, up.render(encoded, s, region))
    sides = [window[2] for window in result.windows]
    assert all(a > b for a, b in zip(sides, sides[1:]))  # the window in the input shrinks
    top, left, wh, ww = result.windows[-1]
    assert (left + ww / 2, top + wh / 2) == (pytest.approx(45, abs=0.2), pytest.approx(12, abs=0.2))
    assert len({f.size for f in result.frames}) == 1 and len(result.frames) == 5


def test_hiif_frames_match_the_whole_outputs_statistics_to_a_grey_level():
    # at ×12 the 480×720 output is above the zoom's statistics budget: estimated on a sub-grid
    result = hiif.zoom(PHOTO, 12, "hiif-edsr", center=(20, 25), size=32, frames=2)
    up = Upscaler(load_model("hiif-edsr"))  # the engine's default: exact statistics at this size
    encoded = up.encode(PHOTO)
    assert hiif.output_size((40, 60), 12)[0] * hiif.output_size((40, 60), 12)[1] > animation.ZOOM_STATS_QUERIES
    for s, crop in zip(result.scales, result.crops["hiif-edsr"]):
        exact = up.render(encoded, s, frame_region((40, 60), s, (20, 25), 32))
        assert np.abs(crop.astype(int) - exact.astype(int)).max() <= 2


def test_a_small_input_starts_where_its_output_fills_the_frame():
    result = hiif.zoom(PHOTO[:20, :30], 8, "bicubic", size=64, frames=3)
    assert result.scales[0] == pytest.approx(64 / 20)
    assert all(c.shape == (64, 64, 3) for c in result.crops["bicubic"])


def test_frame_regions_stay_inside_the_output():
    for s in zoom_scales(1, 30, 20):
        for center in [(0, 0), (59.9, 39.9), (30, 20)]:
            top, left, rh, rw = frame_region((40, 60), s, center, 40)
            H, W = hiif.output_size((40, 60), s)
            assert 0 <= top and top + rh <= H and 0 <= left and left + rw <= W and (rh, rw) == (40, 40)


@pytest.mark.parametrize("kwargs,message", [
    (dict(to=1.0), "starts at ×1"), (dict(to=31), "scale"), (dict(to=(2, 3)), "one scale"),
    (dict(size=8), "frame size"), (dict(size=1000), "frame size"), (dict(frames=1), "number of frames"),
    (dict(frames=2.5), "number of frames"), (dict(center=(60, 5)), "outside"),
    (dict(image=b"not an image"), "cannot use this image"), (dict(versus="hiif-edsr"), "against another"),
    (dict(model=5), "zoo name")])
def test_zoom_checks_its_arguments_before_loading(kwargs, message, monkeypatch):
    monkeypatch.setattr(animation, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    args = dict(image=PHOTO, to=4, model="hiif-edsr", size=32, frames=4) | kwargs
    with pytest.raises(DemoError, match=message):
        hiif.zoom(args.pop("image"), args.pop("to"), args.pop("model"), **args)


@pytest.mark.parametrize("ext", ["webp", "gif", "png"])
def test_saved_animations_loop_and_bounce(ext, tmp_path):
    result = hiif.zoom(PHOTO, 3, "bicubic", size=16, frames=4)
    path = result.save(tmp_path / f"zoom.{ext}", fps=10)
    with Image.open(path) as im:
        assert im.n_frames == 4 and im.info.get("loop") == 0 and im.size == result.frames[0].size
    with Image.open(result.save(tmp_path / f"bounce.{ext}", bounce=True)) as im:
        assert im.n_frames == 6  # 1 2 3 4 3 2, then the loop starts again at 1
    with pytest.raises(ImageError, match="webp, .gif or .png"):
        result.save(tmp_path / "zoom.jpg")
    with pytest.raises(DemoError, match="fps"):
        result.save(tmp_path / "zoom.gif", fps=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"bounce.{ext}", f"zoom.{ext}"]


def test_the_cli_writes_a_zoom(tmp_path, capsys):
    Image.fromarray(PHOTO).save(tmp_path / "in.png")
    out = tmp_path / "zoom.gif"
    assert main(["zoom", str(tmp_path / "in.png"), str(out), "--to", "5", "--model", "bicubic", "--size", "16",
                 "--frames", "3", "--bounce"]) == 0
    assert Image.open(out).n_frames == 4
    assert "4 frames of" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--to", "2,3"], "one scale"), (["--to", "0"], "between 1 and 30"), (["--fps", "0"], "--fps"),
    (["--fps", "60"], "--fps"), (["--size", "8"], "frame size"), (["--frames", "1"], "number of frames"),
    (["--center", "70,5"], "outside"), (["--out", "zoom.jpg"], "webp, .gif or .png"),
    (["--out", "nope/zoom.gif"], "does not exist")])
def test_the_cli_refuses_bad_input_in_one_line_before_loading(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(animation, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    Image.fromarray(PHOTO).save(tmp_path / "in.png")
    out = str(tmp_path / (args[1] if args[0] == "--out" else "zoom.webp"))
    extra = [] if args[0] == "--out" else args
    assert main(["zoom", str(tmp_path / "in.png"), out, *extra, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
