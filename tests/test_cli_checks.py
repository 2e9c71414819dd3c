"""The demanding user's audit: every bad input refused up front with one line (CLI: exit 2, before
any model loads), devices checked, outputs written whole or not at all, colour profiles and
alpha carried to the output, malformed checkpoints named."""
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from safetensors.torch import save_file

import hiif
import hiif.engine
import hiif.evaluate
import hiif.weights
from hiif.cli import main
from hiif.engine import Upscaler, resolve_device
from hiif.imageio import ImageError, composite_on_white, load_image, save_image
from hiif.weights import WeightsError, load_model

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any model load (weights or an evaluation Upscaler) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")
    monkeypatch.setattr(hiif.weights, "load_model", refuse)
    monkeypatch.setattr(hiif.evaluate, "Upscaler", refuse)


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


# -- 1. devices ------------------------------------------------------------------------------

def _absent_devices() -> list[str]:
    names = ["foo", "cuda:7" if torch.cuda.device_count() < 8 else "cuda:99", "meta"]
    if not torch.cuda.is_available():
        names.append("cuda")
    if not torch.backends.mps.is_available():
        names.append("mps")
    return names


@pytest.mark.parametrize("device", _absent_devices())
def test_resolve_device_refuses_absent_devices_in_one_line(device):
    with pytest.raises(ValueError) as info:
        resolve_device(device)
    assert "\n" not in str(info.value) and repr(device) in str(info.value)


def test_load_model_checks_the_device_first(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'foo'"):
        load_model(tmp_path / "missing.pth", device="foo")  # the device, not the missing file
    assert next(load_model(hiif.ZOO["liif-edsr"], device="cpu").parameters()).device.type == "cpu"


# -- 2. everything checked before a model loads ----------------------------------------------

@pytest.mark.parametrize("case", [
    "gif", "icon", "no_extension", "missing_folder", "parent_is_file",
    "jpeg_too_wide", "webp_too_wide", "scale_underscore", "scale_trailing_comma", "scale_inf",
    "scale_nan", "scale_zero", "scale_negative", "scale_above_30", "scale_three_values",
    "device", "fp16_on_cpu", "unreadable_input", "chunk_zero", "tile_negative", "tile_too_small",
    "width_below_input", "height_above_30", "width_zero", "scale_and_width", "no_scale_nor_size",
    "scale_dashdash"])
def test_upscale_checks_everything_before_loading(case, tmp_path, capsys, no_model_loads):
    src = tmp_path / "in.png"
    Image.fromarray(rgb(5, 6)).save(src)
    strip = tmp_path / "strip.png"
    Image.fromarray(rgb(1, 3000)).save(strip)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "dir.png").mkdir()
    out = str(tmp_path / "o.png")
    args = {
        "gif": [str(src), str(tmp_path / "o.gif")],
        "icon": [str(src), str(tmp_path / "o.ico")],
        "no_extension": [str(src), str(tmp_path / "o")],
        "missing_folder": [str(src), str(tmp_path / "nope" / "o.png")],
        "parent_is_file": [str(src), str(tmp_path / "notes.txt" / "o.png")],
        "jpeg_too_wide": [str(strip), str(tmp_path / "o.jpg"), "--scale", "30"],  # 90,000 px wide
        "webp_too_wide": [str(strip), str(tmp_path / "o.webp"), "--scale", "6"],  # 18,000 px wide
        "scale_underscore": [str(src), out, "--scale", "1_5"],
        "scale_trailing_comma": [str(src), out, "--scale", "2,"],
        "scale_inf": [str(src), out, "--scale", "inf"],
        "scale_nan": [str(src), out, "--scale", "nan"],
        "scale_zero": [str(src), out, "--scale", "0"],
        "scale_negative": [str(src), out, "--scale", "-2"],
        "scale_above_30": [str(src), out, "--scale", "30.5"],
        "scale_three_values": [str(src), out, "--scale", "2,2,2"],
        "device": [str(src), out, "--device", "foo"],
        "fp16_on_cpu": [str(src), out, "--precision", "fp16", "--device", "cpu"],
        "unreadable_input": [str(tmp_path / "notes.txt"), out],
        "chunk_zero": [str(src), out, "--chunk", "0"],
        "tile_negative": [str(src), out, "--tile", "-1"],
        "tile_too_small": [str(src), out, "--tile", "8"],
        "width_below_input": [str(src), out, "--width", "5"],  # the input is 6 px wide
        "height_above_30": [str(src), out, "--width", "12", "--height", "151"],
        "width_zero": [str(src), out, "--height", "0"],
        "scale_and_width": [str(src), out, "--scale", "2", "--width", "12"],
        "no_scale_nor_size": [str(src), out],
        "scale_dashdash": [str(src), out, "--scale=--"],  # argparse hands `--` over as []
    }[case]
    if not {"--scale", "--width", "--height"} & set(args) and case not in ("no_scale_nor_size", "scale_dashdash"):
        args += ["--scale", "2"]
    assert main(["upscale", *args, "--model", "hiif-edsr", "--quiet"]) == 2
    line = one_line_error(capsys)
    if case.endswith("too_wide"):
        assert "per side" in line and ".png" in line
    if case == "width_below_input":
        assert "in.png: a width of 5 px is ×0.833333 of the input's 6 px" in line
    assert not (tmp_path / "o.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no probe left behind


@pytest.mark.parametrize("command", ["upscale", "upscale_into_folder", "upscale_via_link", "compare",
                                     "sweep", "zoom"])
def test_no_command_writes_over_its_input(command, tmp_path, capsys, no_model_loads, monkeypatch):
    import hiif.demo

    def refuse(*args, **kwargs):
        raise AssertionError("models were loaded before the output was checked")
    monkeypatch.setattr(hiif.demo, "ModelSet", refuse)
    src = tmp_path / "in.png"
    Image.fromarray(rgb(5, 6)).save(src)
    (tmp_path / "link.png").symlink_to(src)
    before = src.read_bytes()
    args = {"upscale": ["upscale", str(src), str(src), "--scale", "2"],
            "upscale_into_folder": ["upscale", str(src), str(tmp_path), "--scale", "2"],  # writes in.png
            "upscale_via_link": ["upscale", str(tmp_path / "link.png"), str(src), "--scale", "2"],
            "compare": ["compare", str(src), str(src), "--scale", "2"],
            "sweep": ["sweep", str(src), str(src), "--scales", "2,3"],
            "zoom": ["zoom", str(src), str(tmp_path / "link.png"), "--to", "4"]}[command]
    assert main([*args, "--quiet"]) == 2
    assert "this is the input image" in one_line_error(capsys)
    assert src.read_bytes() == before


# -- 2b. a folder of images ------------------------------------------------------------------

def photo_folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rgb(5, 6, 1)).save(photos / "a.png")
    Image.fromarray(rgb(7, 4, 2)).save(photos / "b.JPG", quality=95)
    (photos / "notes.txt").write_text("not an image, not an input")
    (photos / "sub").mkdir()
    Image.fromarray(rgb(3, 3)).save(photos / "sub" / "c.png")  # subfolders are not read
    return photos


def test_upscale_a_folder_into_a_folder(tmp_path, capsys):
    photos = photo_folder(tmp_path)
    out = tmp_path / "up"
    assert main(["upscale", str(photos), str(out), "--scale", "2.5", "--model", "bicubic"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").size == (15, 12) and Image.open(out / "b.png").size == (10, 18)
    err = capsys.readouterr().err
    assert f"[1/2] {photos / 'a.png'}" in err and f"[2/2] {photos / 'b.JPG'}" in err
    # --format for the outputs; an existing output folder is written into
    assert main(["upscale", str(photos), str(out), "--scale", "2", "--model", "bicubic", "--format", "jpg",
                 "--quiet"]) == 0
    assert Image.open(out / "b.jpg").format == "JPEG" and Image.open(out / "b.jpg").size == (8, 14)


def test_upscale_to_a_width_or_a_size(tmp_path, capsys):
    photos = photo_folder(tmp_path)  # a.png 6×5, b.JPG 4×7 (width × height)
    out = tmp_path / "o.png"
    assert main(["upscale", str(photos / "a.png"), str(out), "--width", "20", "--model", "bicubic", "--quiet"]) == 0
    assert Image.open(out).size == (20, 17)  # the aspect ratio kept: 5 · 20/6 = 16.7
    assert main(["upscale", str(photos / "a.png"), str(out), "--width", "13", "--height", "40",
                 "--model", "bicubic", "--quiet"]) == 0
    assert Image.open(out).size == (13, 40)
    # a folder: each image gets the scale that gives it the height asked for
    assert main(["upscale", str(photos), str(tmp_path / "up"), "--height", "30", "--model", "bicubic"]) == 0
    assert Image.open(tmp_path / "up" / "a.png").size == (36, 30)
    assert Image.open(tmp_path / "up" / "b.png").size == (17, 30)
    assert "up/b.png: 17×30" in capsys.readouterr().err.replace("\\", "/")


def test_upscale_a_file_into_a_folder(tmp_path):
    photos = photo_folder(tmp_path)
    assert main(["upscale", str(photos / "b.JPG"), str(tmp_path), "--scale", "3", "--model", "bicubic",
                 "--quiet"]) == 0
    assert Image.open(tmp_path / "b.png").size == (12, 21)


def test_an_unknown_model_leaves_no_output_folder(tmp_path, capsys):
    photos = photo_folder(tmp_path)
    assert main(["upscale", str(photos), str(tmp_path / "up"), "--scale", "2", "--model", "nope", "--quiet"]) == 2
    assert "nope" in one_line_error(capsys)
    assert not (tmp_path / "up").exists()


def test_a_failure_half_way_through_a_folder_says_where_it_stopped(tmp_path, capsys, monkeypatch):
    photos = photo_folder(tmp_path)
    render = Upscaler.render_to_png

    def second_one_fails(self, image, scale, path, **kwargs):
        if path.name == "b.png":
            raise MemoryError("not enough memory for this one")
        return render(self, image, scale, path, **kwargs)
    monkeypatch.setattr(Upscaler, "render_to_png", second_one_fails)
    assert main(["upscale", str(photos), str(tmp_path / "up"), "--scale", "2", "--model", "bicubic",
                 "--quiet"]) == 2
    line = one_line_error(capsys)
    assert "b.JPG: not enough memory for this one (1 of the 2 images written)" in line
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["a.png"]


@pytest.mark.parametrize("case", ["bad_image", "two_bad_images", "same_stem", "into_itself", "output_is_file",
                                  "output_named_like_a_file", "missing_parent", "empty_folder",
                                  "format_for_a_file", "jpeg_too_wide"])
def test_upscale_a_folder_checks_every_image_before_loading(case, tmp_path, capsys, no_model_loads):
    photos = photo_folder(tmp_path)
    out = tmp_path / "up"
    args = [str(photos), str(out)]
    if case in ("bad_image", "two_bad_images"):
        Image.fromarray(rgb(64, 64)).save(photos / "c.png")
        (photos / "c.png").write_bytes((photos / "c.png").read_bytes()[:6000])  # truncated
        if case == "two_bad_images":
            (photos / "d.webp").write_text("not an image")
    elif case == "same_stem":
        Image.fromarray(rgb(4, 4)).save(photos / "a.tif")
    elif case == "into_itself":
        args = [str(photos), str(photos)]
    elif case == "output_is_file":
        args = [str(photos), str(photos / "a.png")]
    elif case == "output_named_like_a_file":
        args = [str(photos), str(tmp_path / "up.png")]
    elif case == "missing_parent":
        args = [str(photos), str(tmp_path / "nope" / "up")]
    elif case == "empty_folder":
        (photos / "sub" / "nothing").mkdir()
        args = [str(photos / "sub" / "nothing"), str(out)]
    elif case == "format_for_a_file":
        args = [str(photos / "a.png"), str(tmp_path / "o.png"), "--format", "jpg"]
    elif case == "jpeg_too_wide":
        Image.fromarray(rgb(1, 3000)).save(photos / "strip.png")
        args += ["--format", "jpg"]
    assert main(["upscale", *args, "--scale", "30", "--model", "hiif-edsr", "--quiet"]) == 2
    line = one_line_error(capsys)
    expected = {"bad_image": "c.png: image file is truncated", "two_bad_images": "and 1 more of the 4 images",
                "same_stem": "a.png and a.tif would both be written to", "into_itself": "is the input folder",
                "output_is_file": "needs an output folder", "output_named_like_a_file": "needs an output folder",
                "missing_parent": "output folder does not exist", "empty_folder": "no images in this folder",
                "format_for_a_file": "--format: only for an output folder", "jpeg_too_wide": "per side"}[case]
    assert expected in line, line
    assert not out.exists()  # nothing written, not even the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_evaluate_scales_are_parsed_once_by_the_cli(tmp_path, monkeypatch):
    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(rgb(8, 8)).save(folder / "a.png")
    seen = {}

    def fake_evaluate(models, data_dir, scales, *rest, **kw):
        seen["scales"] = scales
        return {"dataset": "set", "protocol": "benchmark", "images": 1, "scales": list(scales),
                "psnr": {"bicubic": {f"{s:g}": 30.0 for s in scales}}, "seconds": {}}
    monkeypatch.setattr(hiif.evaluate, "evaluate", fake_evaluate)
    assert main(["evaluate", "--model", "bicubic", "--data", str(folder), "--scales", "2,3.5", "--quiet"]) == 0
    assert seen["scales"] == [2.0, 3.5]


@pytest.mark.parametrize("case", ["missing_folder", "empty_folder", "second_folder_missing",
                                  "out_suffix", "out_folder", "plot_suffix", "plot_folder",
                                  "scales_comma", "scales_underscore", "scales_inf", "scales_zero",
                                  "scales_big", "device"])
def test_evaluate_checks_everything_before_loading(case, tmp_path, capsys, no_model_loads):
    good = tmp_path / "set"
    good.mkdir()
    Image.fromarray(rgb(8, 8)).save(good / "a.png")
    (tmp_path / "empty").mkdir()
    data, extra = str(good), []
    data = {"missing_folder": str(tmp_path / "nope"), "empty_folder": str(tmp_path / "empty"),
            "second_folder_missing": f"{good},{tmp_path / 'nope'}"}.get(case, data)
    extra = {"out_suffix": ["--out", str(tmp_path / "r.txt")],
             "out_folder": ["--out", str(tmp_path / "nope" / "r.json")],
             "plot_suffix": ["--plot", str(tmp_path / "p.gif")],
             "plot_folder": ["--plot", str(tmp_path / "nope" / "p.png")],
             "scales_comma": ["--scales", "2,"], "scales_underscore": ["--scales", "2,1_5"],
             "scales_inf": ["--scales", "inf"], "scales_zero": ["--scales", "0,2"],
             "scales_big": ["--scales", "2,31"], "device": ["--device", "cuda:7"]}.get(case, [])
    assert main(["evaluate", "--model", "hiif-edsr", "--data", data, *extra, "--quiet"]) == 2
    one_line_error(capsys)


def test_evaluate_library_checks_scales_and_images_before_models(tmp_path, no_model_loads):
    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(rgb(8, 8)).save(folder / "a.png")
    with pytest.raises(ValueError, match="scale"):
        hiif.evaluate.evaluate(["hiif-edsr"], folder, [2, 0])
    (folder / "b.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match="b.png"):
        hiif.evaluate.evaluate(["hiif-edsr"], folder, [2])


# -- 3. outputs above MAX_OUTPUT_PIXELS: PNG streamed, others refused; whole or nothing ------

def test_large_png_outputs_are_streamed(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(rgb(6, 5)).save(src)
    expected = np.asarray(hiif.upscale(src, 4, "bicubic"))
    monkeypatch.setattr(hiif.engine, "MAX_OUTPUT_PIXELS", 100)  # the 20×24 output is above it
    out = tmp_path / "o.png"
    assert main(["upscale", str(src), str(out), "--scale", "4", "--model", "bicubic", "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert main(["upscale", str(src), str(tmp_path / "o.jpg"), "--scale", "4", "--model", "bicubic",
                 "--quiet"]) == 2
    assert ".png" in one_line_error(capsys) and not (tmp_path / "o.jpg").exists()


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_render_to_png_is_whole_or_absent(tmp_path, monkeypatch, error):
    up = Upscaler("bicubic", device="cpu")
    enc = up.encode(rgb(10, 10))
    out = tmp_path / "o.png"
    out.write_bytes(b"previous result")
    calls = []
    real = up.render

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error("stopped mid-file")
        return real(*args, **kwargs)
    monkeypatch.setattr(up, "render", failing)
    with pytest.raises(error):
        up.render_to_png(enc, 3, out, band_pixels=200)
    assert out.read_bytes() == b"previous result"  # the old file untouched, no partial one
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # temporary file removed
    monkeypatch.setattr(up, "render", real)
    assert up.render_to_png(enc, 3, out, band_pixels=200) == (30, 30)
    assert np.array_equal(np.asarray(Image.open(out)), up.render(enc, 3))
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_render_to_png_refuses_other_formats(tmp_path):
    with pytest.raises(ImageError, match="PNG"):
        Upscaler("bicubic", device="cpu").render_to_png(rgb(4, 4), 2, tmp_path / "o.jpg")
    assert not (tmp_path / "o.jpg").exists()


# -- 4. ICC profiles -------------------------------------------------------------------------

def test_icc_profile_is_kept_everywhere(tmp_path):
    src = tmp_path / "icc.png"
    Image.fromarray(rgb(6, 7)).save(src, icc_profile=SRGB)
    assert hiif.upscale(src, 2, "bicubic").info["icc_profile"] == SRGB
    for ext in ("png", "jpg", "webp", "tif"):
        out = tmp_path / f"o.{ext}"
        assert main(["upscale", str(src), str(out), "--scale", "2", "--model", "bicubic", "--quiet"]) == 0
        assert Image.open(out).info.get("icc_profile") == SRGB, ext
    # render_to_png writes the iCCP chunk itself, in bands too; the pixels are unchanged by it
    up = Upscaler("bicubic", device="cpu")
    up.render_to_png(src, 2.5, tmp_path / "banded.png", band_pixels=40)
    up.render_to_png(load_image(src).rgb, 2.5, tmp_path / "plain.png", band_pixels=40)
    with Image.open(tmp_path / "banded.png") as im, Image.open(tmp_path / "plain.png") as plain:
        assert im.info["icc_profile"] == SRGB and "icc_profile" not in plain.info
        assert np.array_equal(np.asarray(im), np.asarray(plain))


def test_non_rgb_profiles_are_not_attached_to_rgb_output(tmp_path):
    grey = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not an RGB space
    src = tmp_path / "lab.png"
    Image.fromarray(rgb(4, 4)).save(src, icc_profile=grey)
    assert load_image(src).icc is None
    assert "icc_profile" not in hiif.upscale(src, 2, "bicubic").info


# -- 5. alpha on formats without it -----------------------------------------------------------

@pytest.mark.parametrize("ext", ["bmp", "jpg"])
def test_alpha_is_composited_on_white(tmp_path, ext):
    colour = np.zeros((8, 8, 4), np.uint8)
    colour[..., 0] = 200  # red everywhere, hidden where transparent
    colour[:, :4, 3] = 0
    colour[:, 4:, 3] = 255
    out = tmp_path / f"o.{ext}"
    save_image(Image.fromarray(colour, "RGBA"), out)
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    tol = 0 if ext == "bmp" else 12
    assert np.abs(got[:, :2] - 255).max() <= tol  # transparent: white, not the hidden red
    assert np.abs(got[:, 6:] - [200, 0, 0]).max() <= tol


def test_composite_on_white_weights_by_alpha():
    image = np.zeros((2, 2, 3), np.uint8)
    alpha = np.array([[0, 255], [128, 255]], np.uint8)
    flat = composite_on_white(image, alpha)
    assert flat[0, 0].tolist() == [255] * 3 and flat[0, 1].tolist() == [0] * 3
    assert flat[1, 0].tolist() == [127] * 3
    assert composite_on_white(image, None) is image


# -- 6. float arrays --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [128.0, -0.5, 1.5])
def test_float_arrays_outside_unit_range_are_refused(value):
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        hiif.upscale(np.full((4, 4, 3), value, np.float32), 2, "bicubic")
    assert np.asarray(hiif.upscale(np.full((4, 4, 3), 0.5, np.float32), 2, "bicubic")).max() == 128


# -- 7. malformed checkpoints -----------------------------------------------------------------

def _edsr_liif():
    return load_model(hiif.ZOO["liif-edsr"])


@pytest.mark.parametrize("case", ["not_a_dict", "no_model_key", "sd_is_a_tensor", "sd_values_not_tensors",
                                  "name_not_str", "args_not_dict", "truncated", "wrong_shape"])
def test_malformed_checkpoints_raise_weights_error(case, tmp_path):
    spec = hiif.ZOO["liif-edsr"]
    if case == "wrong_shape":
        state = {k: v.contiguous() for k, v in _edsr_liif().state_dict().items()}
        key = next(k for k, v in state.items() if v.ndim == 4)
        state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
        path = tmp_path / "bad.safetensors"
        save_file(state, str(path), metadata={"spec": json.dumps(spec)})
    else:
        path = tmp_path / "bad.pth"
        content = {"not_a_dict": [1, 2], "no_model_key": {"state_dict": {}},
                   "sd_is_a_tensor": {"model": {**spec, "sd": torch.zeros(3)}},
                   "sd_values_not_tensors": {"model": {**spec, "sd": {"x": 1}}},
                   "name_not_str": {"model": {"name": ["liif"], "args": {}, "sd": {}}},
                   "args_not_dict": {"model": {"name": "liif", "args": [1], "sd": {}}},
                   "truncated": {"model": {**spec, "sd": _edsr_liif().state_dict()}}}[case]
        torch.save(content, path)
        if case == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    if case == "wrong_shape":
        assert "shape" in message


def test_pickled_checkpoint_is_not_advised_to_be_unpickled(tmp_path):
    path = tmp_path / "pickled.pth"
    # a checkpoint holding an arbitrary Python object
    torch.save({"model": {"name": "liif", "args": {}, "sd": {}}, "extra": _Opaque()}, path)
    with pytest.raises(WeightsError) as info:
        load_model(path)
    message = str(info.value)
    assert "not a plain tensor checkpoint" in message and "pickled.pth" in message
    assert "weights_only" not in message and "trust" not in message and "\n" not in message


class _Opaque:
    pass


def test_a_file_that_is_no_checkpoint_is_not_said_to_hold_pickles(tmp_path):
    for name, data in [("notes.pth", b"not a checkpoint at all\n"), ("empty.pth", b""),
                       ("noise.pth", bytes(range(7, 250)))]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError, match=f"{name}: not a PyTorch checkpoint") as info:
            load_model(tmp_path / name)
        assert "pickled" not in str(info.value)


# -- 9. compare: a comparison figure from the shell --------------------------------------------

@pytest.fixture
def figure_inputs(tmp_path):
    """A 16×12 input, a text file beside it (notes.txt) and the figure's path: (input, output)."""
    src = tmp_path / "in.png"
    Image.fromarray(rgb(12, 16)).save(src)
    (tmp_path / "notes.txt").write_text("not an image")
    return src, str(tmp_path / "fig.png")


@pytest.fixture
def no_model_set(monkeypatch):
    import hiif.demo

    def refuse(*args, **kwargs):
        raise AssertionError("models were loaded before the inputs were checked")
    monkeypatch.setattr(hiif.demo, "ModelSet", refuse)


@pytest.mark.parametrize("case", [
    "size_small", "size_large", "center_one_value", "center_three_values", "center_negative",
    "center_outside", "gif", "missing_folder", "crops_missing", "unreadable_input", "scale_zero",
    "scale_nan", "device", "ground_truth_too_small", "max_input_zero", "max_input_nan"])
def test_compare_checks_everything_before_loading(case, tmp_path, capsys, no_model_set, figure_inputs):
    src, out = figure_inputs
    args = {
        "size_small": [str(src), out, "--size", "8"],
        "size_large": [str(src), out, "--size", "5000"],
        "center_one_value": [str(src), out, "--center", "3"],
        "center_three_values": [str(src), out, "--center", "1,2,3"],
        "center_negative": [str(src), out, "--center=-1,2"],
        "center_outside": [str(src), out, "--center", "16,3"],  # x beyond the 16 px width
        "gif": [str(src), str(tmp_path / "fig.gif")],
        "missing_folder": [str(src), str(tmp_path / "nope" / "fig.png")],
        "crops_missing": [str(src), out, "--crops", str(tmp_path / "nope")],
        "unreadable_input": [str(tmp_path / "notes.txt"), out],
        "scale_zero": [str(src), out, "--scale", "0"],
        "scale_nan": [str(src), out, "--scale", "nan"],
        "device": [str(src), out, "--device", "foo"],
        "ground_truth_too_small": [str(src), out, "--scale", "20", "--ground-truth"],  # 12 px / 20
        "max_input_zero": [str(src), out, "--max-input-mp", "0"],
        "max_input_nan": [str(src), out, "--max-input-mp", "nan"],
    }[case]
    if "--scale" not in args:
        args += ["--scale", "2"]
    assert main(["compare", *args, "--quiet"]) == 2
    one_line_error(capsys)
    assert not (tmp_path / "fig.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no probe left behind


def test_compare_writes_the_figure_and_the_crops(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(rgb(64, 80)).save(src)
    fig, crops = tmp_path / "fig.jpg", tmp_path / "crops"
    crops.mkdir()
    assert main(["compare", str(src), str(fig), "--scale", "2.5", "--center", "20,5", "--size", "32",
                 "--crops", str(crops), "--ground-truth"]) == 0
    err = capsys.readouterr().err
    assert "figure of the 32×32 region" in err and "PSNR (dB)" in err
    shown = Image.open(fig)
    assert shown.format == "JPEG" and shown.width > 5 * 256  # the ground truth, 4 methods, its crop
    names = sorted(p.name for p in crops.iterdir())
    assert len(names) == 5 and all("_region-" in n or "lr-input" in n for n in names), names
    assert not any("comparison" in n for n in names)  # the figure went where it was asked to


def test_compare_without_hiif_weights_says_so(tmp_path, capsys, monkeypatch):
    import hiif.weights

    monkeypatch.setattr(hiif.weights, "WEIGHTS_DIR", tmp_path)
    src = tmp_path / "in.png"
    Image.fromarray(rgb(12, 16)).save(src)
    assert main(["compare", str(src), str(tmp_path / "fig.png"), "--scale", "2", "--quiet"]) == 2
    assert "HIIF weights are not available" in one_line_error(capsys)


def test_compare_a_part_of_a_large_input(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(rgb(60, 80)).save(src)
    fig = tmp_path / "fig.png"
    assert main(["compare", str(src), str(fig), "--scale", "2", "--center", "70,10", "--size", "32",
                 "--max-input-mp", "0.0009"]) == 0  # a 30×30 part
    assert "figure of the 32×32 region" in capsys.readouterr().err
    comparison = hiif.compare(str(src), 2, center=(70, 10), size=32, max_input_pixels=900)
    assert comparison.job.crop == (0, 50, 30, 30)  # around the point, inside the picture
    assert comparison.figure().size == Image.open(fig).size


@pytest.mark.parametrize("case", ["scales_bad", "scales_zero", "window_small", "center_outside", "gif",
                                  "missing_model", "unreadable_input"])
def test_sweep_checks_everything_before_loading(case, tmp_path, capsys, figure_inputs, monkeypatch):
    import hiif.demo

    src, out = figure_inputs
    if case != "missing_model":  # only a model that cannot be loaded is found by loading it
        def refuse(*args, **kwargs):
            raise AssertionError("the model was loaded before the inputs were checked")
        monkeypatch.setattr(hiif.demo, "load_model", refuse)
    args = {
        "scales_bad": [str(src), out, "--scales", "2,x"],
        "scales_zero": [str(src), out, "--scales", "0,2"],
        "window_small": [str(src), out, "--window", "2"],
        "center_outside": [str(src), out, "--center", "3,12"],
        "gif": [str(src), str(tmp_path / "fig.gif")],
        "missing_model": [str(src), out, "--model", str(tmp_path / "none.safetensors")],
        "unreadable_input": [str(tmp_path / "notes.txt"), out],
    }[case]
    assert main(["sweep", *args, "--quiet"]) == 2
    one_line_error(capsys)
    assert not (tmp_path / "fig.png").exists()


def test_sweep_writes_a_figure(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(rgb(20, 24)).save(src)
    assert main(["sweep", str(src), str(tmp_path / "fig.png"), "--scales", "2,5.5", "--window", "8"]) == 0
    assert "hiif-edsr at ×2, ×5.5" in capsys.readouterr().err
    assert Image.open(tmp_path / "fig.png").width == 3 * 256 + 4 * 8
