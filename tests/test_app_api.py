"""The demo's API endpoint /upscale through gradio_client, against app.py running in a subprocess."""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path

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


def test_figure_endpoint(client, server, tmp_path):
    hr = (np.random.default_rng(4).random((48, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    path, info = client.predict(image=gradio_client.handle_file(str(tmp_path / "hr.png")),
                                backbone="EDSR-baseline", scale=2, mode="Ground truth", center_x=0.25,
                                center_y=0.75, size=32, api_name="/figure")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 6 * 256 and im.height < im.width / 3  # one row of six
    assert info["region"]["height"] == info["region"]["width"] == 32
    assert all(info["methods"][m]["psnr"] is not None for m in METHODS)
    with pytest.raises(Exception, match="region side"):
        client.predict(image=gradio_client.handle_file(str(tmp_path / "hr.png")), size=8.5, api_name="/figure")
    assert server.alive(), server.log_tail()


def test_zoom_endpoint(client, server, tmp_path):
    Image.fromarray((np.random.default_rng(5).random((24, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    path, info = client.predict(image=gradio_client.handle_file(str(tmp_path / "in.png")), backbone="EDSR-baseline",
                                scale=3, versus="liif", center_x=0.25, center_y=0.75, api_name="/zoom")
    with Image.open(path) as im:
        assert im.format == "WEBP" and im.n_frames == 2 * info["frames"] - 2  # forwards, then back
        assert (im.width, im.height) == (info["frame_size"]["width"], info["frame_size"]["height"])
    assert info["scales"][0] == 1 and info["scales"][-1] == pytest.approx(3)
    with pytest.raises(Exception, match="liif.*lte"):  # refused by the dropdown or the demo
        client.predict(image=gradio_client.handle_file(str(tmp_path / "in.png")), scale=3, versus="hiif",
                       api_name="/zoom")
    assert server.alive(), server.log_tail()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS read from /proc (Linux)")
def test_six_concurrent_requests_match_sequential_ones_in_bounded_memory(client, server, tmp_path):
    rng = np.random.default_rng(5)
    jobs = []
    for i, (backbone, scale) in enumerate([("EDSR-baseline", 2.5), ("RDN", 3.0), ("SwinIR", 4.2),
                                           ("EDSR-baseline", 7.0), ("RDN", 1.5), ("SwinIR", 2.0)]):
        path = tmp_path / f"in{i}.png"
        Image.fromarray((rng.random((12 + i, 14, 3)) * 255).astype(np.uint8)).save(path)
        jobs.append((gradio_client.handle_file(str(path)), backbone, scale))

    sequential = [_arrays(client.predict(*job, api_name="/upscale")) for job in jobs]
    peak_sequential = _rss_mb(server.proc.pid)

    samples, done = [], threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(_rss_mb(server.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        submitted = [client.submit(*job, api_name="/upscale") for job in jobs]
        concurrent = [_arrays(job.result(timeout=600)) for job in submitted]
    finally:
        done.set()
        sampler.join()
    for i, (a, b) in enumerate(zip(sequential, concurrent)):
        for method, x, y in zip(METHODS, a, b):
            np.testing.assert_array_equal(x, y, err_msg=f"request {i} {method}")
    assert server.alive(), server.log_tail()
    # The render queue runs one job at a time on CPU: six visitors cost no more than one.
    assert max(samples) <= 1.25 * peak_sequential + 200, (max(samples), peak_sequential)
