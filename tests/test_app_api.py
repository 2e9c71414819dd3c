"""The demo's API endpoint /upscale through gradio_client, against app.py running in a subprocess."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from app_server import shared_server  # noqa: E402

import hiif  # noqa: E402

BACKBONES = ["EDSR-baseline", "RDN", "SwinIR"]
METHODS = ["hiif", "bicubic", "liif", "lte"]


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:8, 0:10]
    base = np.stack([x * 25, y * 30, (x * y) * 3], axis=-1).astype(np.float64)
    image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("api") / "small.png"
    Image.fromarray(image).save(path)
    return path


def _arrays(result) -> list[np.ndarray]:
    assert len(result) == 5, result
    images = []
    for path in result[:4]:
        assert path, f"missing image in {result}"
        with Image.open(path) as im:
            assert im.format == "PNG"
            images.append(np.asarray(im.convert("RGB")))
    return images


def test_api_is_documented(client):
    info = client.view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"]["/upscale"]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names[:3] == ["image", "backbone", "scale"]
    assert all(p["parameter_has_default"] for p in endpoint["parameters"][1:])
    assert [r["label"] for r in endpoint["returns"]] == [*METHODS, "info"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_four_distinct_images_of_the_right_size(client, small_png, backbone):
    h, w = 8, 10
    for scale in (3.3, 30):
        result = client.predict(gradio_client.handle_file(str(small_png)), backbone, scale,
                                api_name="/upscale")
        images = _arrays(result)
        expected = (round(h * scale), round(w * scale))
        assert expected == hiif.output_size((h, w), scale)
        for method, image in zip(METHODS, images):
            assert image.shape == (*expected, 3), (method, image.shape)
        for i in range(4):
            for j in range(i + 1, 4):
                assert not np.array_equal(images[i], images[j]), (METHODS[i], METHODS[j])
        info = result[4]
        assert info["full"] is True
        assert info["output_size"] == {"height": expected[0], "width": expected[1]}
        assert info["backbone"] == backbone
        if scale == 30:  # same image again: the encoders' features come from the cache
            assert info["methods"]["hiif"]["features_cached"] is True


def test_vertical_scale_and_ground_truth(client, small_png, tmp_path):
    result = client.predict(gradio_client.handle_file(str(small_png)), "EDSR-baseline", 3, 2,
                            api_name="/upscale")
    assert all(im.shape == (16, 30, 3) for im in _arrays(result))

    hr = (np.random.default_rng(3).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    result = client.predict(image=gradio_client.handle_file(str(tmp_path / "hr.png")),
                            backbone="EDSR-baseline", scale=2, mode="Ground truth", api_name="/upscale")
    assert all(im.shape == (24, 32, 3) for im in _arrays(result))
    for method in METHODS:
        m = result[4]["methods"][method]
        assert m["psnr"] is not None and math.isfinite(m["psnr"]), (method, m)
        assert m["ssim"] is not None and -1 <= m["ssim"] <= 1, (method, m)


@pytest.mark.parametrize("kwargs,message", [
    (dict(scale=31), "scale"),
    (dict(scale=0.5), "scale"),
    (dict(backbone="VGG"), ""),
    (dict(mode="Sideways"), ""),
    (dict(image="text"), "image"),
    (dict(image="empty"), "image"),
    (dict(mode="Ground truth", scale=20), "too small"),
])
def test_bad_input_is_an_error_and_the_server_lives_on(client, server, small_png, tmp_path, kwargs, message):
    args = dict(image=str(small_png), backbone="EDSR-baseline", scale=2.0)
    args.update(kwargs)
    if args["image"] == "text":
        (tmp_path / "notes.png").write_text("not an image at all")
        args["image"] = str(tmp_path / "notes.png")
    elif args["image"] == "empty":
        (tmp_path / "empty.png").write_bytes(b"")
        args["image"] = str(tmp_path / "empty.png")
    args["image"] = gradio_client.handle_file(args["image"])
    with pytest.raises(Exception) as err:
        client.predict(**args, api_name="/upscale")
    assert message.lower() in str(err.value).lower(), str(err.value)
    assert server.alive(), server.log_tail()
    ok = client.predict(gradio_client.handle_file(str(small_png)), "EDSR-baseline", 1.5, api_name="/upscale")
    assert _arrays(ok)[0].shape == (12, 15, 3)
