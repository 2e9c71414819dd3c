"""hiif.demo: the logic behind app.py (no Gradio needed)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hiif
import hiif.figure
from hiif import demo
from hiif.evaluate import make_pair
from hiif.weights import ZOO

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
IMAGE = (RNG.random((12, 16, 3)) * 255).astype(np.uint8)
EDSR = ["hiif-edsr", "liif-edsr", "lte-edsr"]


def limits(**kw) -> demo.Limits:
    base = dict(device="cpu", preview_side=64, full_pixels=100_000, input_pixels=10_000, concurrency=1,
                chunk=2048, stats_max_queries=1 << 20, cache_bytes=1 << 30)
    base.update(kw)
    return demo.Limits(**base)


def random_loader(name, device):
    torch.manual_seed(sum(map(ord, name)))
    return hiif.load_model(ZOO[name], device)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    return demo.ModelSet("cpu", limits(), names=EDSR, loader=random_loader)


# -- scales, regions, clicks -----------------------------------------------------------------------
def test_parse_scale():
    assert demo.parse_scale(3.3) == (3.3, 3.3)
    assert demo.parse_scale(3.3, 0) == (3.3, 3.3)
    assert demo.parse_scale("2.5", None) == (2.5, 2.5)
    assert demo.parse_scale(3, 2) == (2.0, 3.0)  # (vertical, horizontal)
    for bad in [None, 0.99, 30.01, float("nan"), "x", (2, 3)]:
        with pytest.raises(demo.DemoError, match="scale"):
            demo.parse_scale(bad)
    with pytest.raises(demo.DemoError, match="scale"):
        demo.parse_scale(2, 31)


@pytest.mark.parametrize("out_hw,budget", [((100, 80), 10_000), ((2000, 3000), 512 * 512),
                                           ((30, 90_000), 512 * 512), ((90_000, 7), 4096),
                                           ((30720, 30720), 2048 * 2048)])
def test_preview_region_within_budget_and_output(out_hw, budget):
    H, W = out_hw
    for centre in [None, (0, 0), (1, 1), (0.25, 0.8), (float("nan"), 2.0)]:
        top, left, h, w = demo.preview_region(out_hw, budget, centre)
        assert h * w <= budget and h >= 1 and w >= 1
        assert 0 <= top and top + h <= H and 0 <= left and left + w <= W
        if H * W <= budget:
            assert (top, left, h, w) == (0, 0, H, W)
        else:  # uses the budget well
            assert h * w > budget * 0.9 or h == H or w == W


def test_preview_region_follows_the_centre():
    assert demo.preview_region((1000, 1000), 100 * 100) == (450, 450, 100, 100)  # middle by default
    assert demo.preview_region((1000, 1000), 100 * 100, (0.0, 0.0)) == (0, 0, 100, 100)
    assert demo.preview_region((1000, 1000), 100 * 100, (1.0, 1.0)) == (900, 900, 100, 100)
    assert demo.preview_region((1000, 1000), 100 * 100, (0.2, 0.7)) == (150, 650, 100, 100)


def test_click_to_centre():
    assert demo.click_to_centre([0, 0], (10, 20)) == (0.05, 0.025)
    assert demo.click_to_centre([19, 9], (10, 20)) == (0.95, 0.975)
    assert demo.click_to_centre(None, (10, 20)) == (0.5, 0.5)
    assert demo.click_to_centre([500, -3], (10, 20)) == (0.0, 1.0)


def test_image_size_reads_exif_rotation(tmp_path):
    Image.fromarray(IMAGE).save(tmp_path / "plain.png")
    assert demo.image_size(tmp_path / "plain.png") == (12, 16)
    im = Image.fromarray(IMAGE)
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90° clockwise
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert demo.image_size(tmp_path / "rotated.jpg") == (16, 12)
    assert hiif.load_image(tmp_path / "rotated.jpg").size == (16, 12)
    (tmp_path / "bad.png").write_text("nope")
    with pytest.raises(demo.DemoError):
        demo.image_size(tmp_path / "bad.png")


# -- ground truth and metrics ----------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3.3, 4, 7.5])
def test_ground_truth_pair_matches_the_evaluation_protocol(scale):
    hr = (RNG.random((50, 61, 3)) * 255).astype(np.uint8)
    lr, crop = demo.ground_truth_pair(hr, (scale, scale))
    lr2, crop2 = make_pair(hr, scale)
    assert np.array_equal(lr, lr2) and np.array_equal(crop, crop2)
    assert hiif.output_size(lr.shape[:2], scale) == crop.shape[:2]


def test_ground_truth_pair_per_axis():
    hr = (RNG.random((50, 61, 3)) * 255).astype(np.uint8)
    lr, crop = demo.ground_truth_pair(hr, (2.5, 4))
    assert lr.shape[:2] == (20, 15) and crop.shape[:2] == (50, 60)
    assert hiif.output_size(lr.shape[:2], (2.5, 4)) == crop.shape[:2]
    with pytest.raises(demo.DemoError, match="too small"):
        demo.ground_truth_pair(hr[:10], (20, 2))


def test_region_metrics_shave_only_at_the_image_border():
    gt = (RNG.random((40, 40, 3)) * 255).astype(np.uint8)
    p, s = demo.region_metrics(gt, gt, (0, 0, 40, 40), (40, 40), shave=4)
    assert p == math.inf and s == pytest.approx(1.0)
    noisy = gt.copy()
    noisy[:4] = 0  # only inside the shaved border: does not count
    assert demo.region_metrics(noisy, gt, (0, 0, 40, 40), (40, 40), 4)[0] == math.inf
    # a region in the middle is not shaved at all
    region = (10, 10, 20, 20)
    pred = gt[10:30, 10:30].copy()
    pred[0, 0] = 255 - pred[0, 0]
    assert demo.region_metrics(pred, gt, region, (40, 40), 4)[0] < math.inf
    assert math.isnan(demo.region_metrics(gt[:3, :3], gt, (0, 0, 3, 3), (40, 40), 4)[0])


# -- jobs -------------------------------------------------------------------------------------------
def test_plan_job_upscale_and_ground_truth(tmp_path):
    Image.fromarray(IMAGE).save(tmp_path / "my photo!.png")
    lim = limits()
    job = demo.plan_job(str(tmp_path / "my photo!.png"), "RDN", 3.3, None, "Upscale", limits=lim)
    assert job.out_hw == (40, 53) and job.full and job.name == "my-photo"
    assert job.gt is None and job.lr.size == (12, 16)
    job = demo.plan_job(IMAGE, "SwinIR", 30, None, "Upscale", (0.0, 1.0), limits=lim)
    assert job.out_hw == (360, 480) and job.region == (0, 416, 64, 64) and not job.full
    assert "64×64 region" in job.describe()
    gt_job = demo.plan_job(IMAGE, "EDSR-baseline", 2.5, None, "Ground truth", limits=lim)
    assert gt_job.lr.size == (4, 6) and gt_job.out_hw == gt_job.gt.shape[:2] == (10, 15)
    aniso = demo.plan_job(IMAGE, "EDSR-baseline", 2, 3, "Upscale", limits=lim)
    assert aniso.scale == (3.0, 2.0) and aniso.out_hw == (36, 32)


@pytest.mark.parametrize("args,message", [
    ((None, "RDN", 2), "upload an image"),
    ((IMAGE, "VGG", 2), "unknown backbone"),
    ((IMAGE, "RDN", 2, None, "Sideways"), "unknown mode"),
    ((IMAGE, "RDN", 31), "scale"),
    ((IMAGE, "RDN", None), "scale"),
    ((np.zeros((2, 2)), "RDN", 2), None),  # fine: greyscale 2×2
    ((np.zeros((5, 5, 7), np.uint8), "RDN", 2), "cannot use this image"),
    ((b"not an image", "RDN", 2), "cannot use this image"),
    ((IMAGE, "RDN", 20, None, "Ground truth"), "too small"),
])
def test_plan_job_errors(args, message):
    if message is None:
        demo.plan_job(*args, limits=limits())
        return
    with pytest.raises(demo.DemoError, match=message):
        demo.plan_job(*args, limits=limits())


def test_plan_text_says_what_run_will_render_before_it_runs(tmp_path):
    lim = limits()
    text = demo.plan_text(IMAGE, "RDN", 3.3, None, "Upscale", limits=lim)
    assert text.startswith("**Run** renders: **RDN**") and "16×12 → 53×40 (×3.3" in text
    assert "64×64 region" in demo.plan_text(IMAGE, "SwinIR", 30, None, "Upscale", (0.0, 1.0), limits=lim)
    assert "downsampled to 6×4" in demo.plan_text(IMAGE, "RDN", 2.5, None, "Ground truth", limits=lim)
    # a problem is shown before the user waits for anything; no image, nothing to say
    assert demo.plan_text(IMAGE, "RDN", 20, None, "Ground truth", limits=lim).startswith("⚠️")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert "cannot use this image" in demo.plan_text(str(tmp_path / "bad.png"), "RDN", 2, limits=lim)
    assert demo.plan_text(None, "RDN", 2, limits=lim) == ""


def test_the_heavier_encoders_take_smaller_inputs_on_a_cpu():
    """RDN and SwinIR cost 20-26x EDSR-baseline per input pixel on a CPU: a quarter of the input."""
    image = (RNG.random((80, 80, 3)) * 255).astype(np.uint8)  # 6,400 px
    cpu, gpu = limits(input_pixels=10_000), limits(input_pixels=10_000, device="cuda")
    assert demo.plan_job(image, "EDSR-baseline", 2, limits=cpu).lr.size == (80, 80)
    for backbone in ("RDN", "SwinIR"):
        assert cpu.input_pixels_for(backbone) == 2_500 and gpu.input_pixels_for(backbone) == 10_000
        job = demo.plan_job(image, backbone, 2, limits=cpu)  # a 50×50 part of it
        assert job.lr.size == (50, 50) and job.crop == (15, 15, 50, 50)
        assert f"80×80 image is more than this server encodes with {backbone}" in job.describe()
        assert demo.plan_job(image, backbone, 2, limits=gpu).lr.size == (80, 80)


def test_larger_inputs_are_compared_in_a_part_around_the_chosen_point():
    image = (RNG.random((300, 200, 3)) * 255).astype(np.uint8)
    alpha = (RNG.random((300, 200)) * 255).astype(np.uint8)
    lim = limits(input_pixels=50 * 40)
    # the part is as large as the server encodes, centred on the point, kept inside the picture
    job = demo.plan_job(np.dstack([image, alpha]), "EDSR-baseline", 3, None, "Upscale", (0.1, 0.5), limits=lim)
    top, left, ch, cw = job.crop
    assert 1800 < ch * cw <= 2000
    assert abs(top + ch / 2 - 30) <= 1 and abs(left + cw / 2 - 100) <= 1
    assert np.array_equal(job.lr.rgb, image[top:top + ch, left:left + cw])
    assert np.array_equal(job.lr.alpha, alpha[top:top + ch, left:left + cw])
    assert job.source.size == (300, 200) and f"its {cw}×{ch} part at x {left}–{left + cw}" in job.describe()
    # the region shown is still around the point (the middle of the part, here)
    rt, rl, rh, rw = job.region
    assert abs((rt + rh / 2) / 3 - ch / 2) <= 1 and abs((rl + rw / 2) / 3 - cw / 2) <= 1
    corner = demo.plan_job(image, "EDSR-baseline", 3, None, "Upscale", (1.0, 1.0), limits=lim)
    t, l, h, w = corner.crop
    assert (t + h, l + w) == (300, 200)  # clamped to the picture
    assert corner.region[0] + corner.region[2] == corner.out_hw[0]  # and the region to its corner
    # ground truth: the part is sized so that its downsampled image fits
    gt_job = demo.plan_job(image, "EDSR-baseline", 2, None, "Ground truth", limits=lim)
    assert gt_job.lr.size[0] * gt_job.lr.size[1] <= 2000 and gt_job.crop[2] * gt_job.crop[3] <= 8000
    ct, cl = gt_job.crop[:2]
    crop_h, crop_w = gt_job.gt.shape[:2]
    assert np.array_equal(gt_job.gt, image[ct:ct + crop_h, cl:cl + crop_w])
    # a whole render keeps the part
    whole = demo.whole_job(job, limits(input_pixels=50 * 40, full_pixels=10 ** 6))
    assert whole.full and whole.crop == job.crop and whole.source is job.source


def test_device_limits_and_env(monkeypatch):
    lim = demo.device_limits("cpu")
    assert lim.device == "cpu" and lim.preview_side == 512 and lim.full_pixels == 16_000_000
    assert lim.input_pixels == 1024 * 1024 and lim.concurrency == 1
    monkeypatch.setenv("HIIF_DEMO_PREVIEW", "256")
    monkeypatch.setenv("HIIF_DEMO_FULL_MP", "2")
    monkeypatch.setenv("HIIF_DEMO_CHUNK", "4096")
    lim = demo.device_limits("cpu")
    assert (lim.preview_side, lim.full_pixels, lim.chunk) == (256, 2_000_000, 4096)
    monkeypatch.setenv("HIIF_DEMO_FULL_MP", "lots")
    with pytest.raises(demo.DemoError, match="HIIF_DEMO_FULL_MP"):
        demo.device_limits("cpu")


# -- models and comparisons ------------------------------------------------------------------------
def test_missing_weights_are_named():
    def loader(name, device):
        if name != "hiif-edsr":
            raise hiif.WeightsError(f"{name}: weights not installed (expected weights/{name}.safetensors)")
        return random_loader(name, device)

    ms = demo.ModelSet("cpu", limits(), loader=loader)
    assert ms.available_backbones() == ["EDSR-baseline"]
    assert len(ms.missing()) == 8 and "hiif-edsr" not in ms.missing()
    text = ms.status_markdown()
    assert "**Device:** CPU" in text and "Missing weights" in text
    for name in ms.missing():
        assert f"`{name}`" in text
    job = demo.plan_job(IMAGE, "EDSR-baseline", 2, limits=ms.limits)
    comparison = ms.compare(job)
    assert comparison.results["liif"].image is None and "not installed" in comparison.results["liif"].note
    assert comparison.results["hiif"].image.shape == (24, 32, 3)
    with pytest.raises(demo.DemoError, match="RDN: HIIF weights are not available"):
        ms.compare(demo.plan_job(IMAGE, "RDN", 2, limits=ms.limits))


def test_our_weights_are_introduced_as_early_models():
    def ours(name, device):
        model = random_loader(name, device)
        model.metadata = {"steps": "1500"}
        return model

    def official(name, device):
        model = random_loader(name, device)
        model.metadata = {"origin": "official checkpoint"}
        return model

    text = demo.ModelSet("cpu", limits(), names=EDSR, loader=ours).status_markdown()
    assert "ours, 1500 steps" in text and "early models" in text and "weights/MODELS.md" in text
    text = demo.ModelSet("cpu", limits(), names=EDSR, loader=official).status_markdown()
    assert "official checkpoint" in text and "early models" not in text


def test_compare_regions_cache_and_files(models, tmp_path):
    progress = []
    job = demo.plan_job(IMAGE, "EDSR-baseline", 7.3, None, "Upscale", (0.3, 0.6), limits=models.limits)
    assert not job.full and job.region[2:] == (64, 64)
    comparison = models.compare(job, progress=lambda f, d: progress.append((f, d)))
    assert [f for f, _ in progress] == sorted(f for f, _ in progress) and progress[-1][0] == 1.0
    assert any("HIIF-EDSR-baseline: decoding" in d for _, d in progress)
    for method, r in comparison.results.items():
        assert r.image.shape == (64, 64, 3), method
        assert math.isnan(r.psnr)  # upscale mode: no ground truth
    # a region equals the crop of the whole output (HIIF uses whole-grid statistics)
    whole = models.compare(demo.whole_job(job, models.limits), methods=["hiif", "bicubic"])
    top, left, h, w = job.region
    for method in ("hiif", "bicubic"):
        crop = whole.results[method].image[top:top + h, left:left + w]
        assert np.abs(crop.astype(int) - comparison.results[method].image).max() <= 1, method
    assert whole.results["hiif"].cached  # same image: encoder not run again
    # table and JSON
    rows = comparison.table()
    assert [r[0] for r in rows] == ["HIIF", "Bicubic", "LIIF", "LTE"]
    assert all(len(r) == len(demo.TABLE_HEADERS) for r in rows)
    json.dumps(demo.api_info(comparison, models))
    # files: region PNGs named after the input, scale and model
    paths = demo.save_results(comparison, tmp_path)
    assert set(paths) == {"hiif", "bicubic", "liif", "lte", "figure"}
    for method, path in paths.items():
        assert re.fullmatch(r"image_x7\.3_[a-z-]+_region-y\d+-x\d+-64x64\.png", path.name), path.name
        if method != "figure":
            assert np.array_equal(np.asarray(Image.open(path)), comparison.results[method].image)
    assert paths["figure"].name.startswith("image_x7.3_edsr-comparison_region")
    offer, text = demo.full_render_offer(comparison, models.limits)
    assert offer and "Render the whole 117×88 output" in text
    assert not demo.full_render_offer(whole, models.limits)[0]


def test_ground_truth_scores_and_alpha(models, tmp_path):
    hr = np.asarray(Image.fromarray(IMAGE).resize((64, 48), Image.BICUBIC))
    job = demo.plan_job(hr, "EDSR-baseline", 2, None, "Ground truth", limits=models.limits)
    comparison = models.compare(job)
    for r in comparison.results.values():
        assert r.image.shape == (48, 64, 3) and math.isfinite(r.psnr) and -1 <= r.ssim <= 1
    paths = demo.save_results(comparison, tmp_path)
    assert "lr" in paths and Image.open(paths["lr"]).size == (32, 24)
    rgba = np.dstack([IMAGE, np.full(IMAGE.shape[:2], 128, np.uint8)])
    comparison = models.compare(demo.plan_job(rgba, "EDSR-baseline", 2, limits=models.limits),
                                methods=["hiif"])
    path = demo.save_results(comparison, tmp_path)["hiif"]
    assert Image.open(path).mode == "RGBA"


def test_comparison_figure_waits_for_every_method_and_shows_each_region(models):
    job = demo.plan_job(IMAGE, "EDSR-baseline", 7.3, None, "Upscale", (0.3, 0.6), budget=32 * 32,
                        limits=models.limits)
    steps = list(models.compare_iter(job))
    partial = demo.Comparison(job, dict(list(steps[-1].results.items())[:2]))
    assert partial.figure() is None  # HIIF and bicubic only: not yet
    comparison = steps[-1]
    fig = np.asarray(comparison.figure())
    ph, pw = hiif.figure.panel_size(32, 32)
    zoom = ph // 32
    assert fig.shape[1] == 5 * pw + 6 * hiif.figure.GAP  # the input, then four methods
    for i, method in enumerate(demo.FIGURE_ORDER, start=1):  # HIIF last, as papers show it
        x = hiif.figure.GAP + i * (pw + hiif.figure.GAP)
        shown = fig[hiif.figure.GAP:hiif.figure.GAP + ph, x:x + pw]
        expected = comparison.results[method].image.repeat(zoom, 0).repeat(zoom, 1)
        assert np.array_equal(shown, expected), method
    # ground truth: the scored methods and then the ground truth's own region
    hr = np.asarray(Image.fromarray(IMAGE).resize((64, 48), Image.BICUBIC))
    gt_job = demo.plan_job(hr, "EDSR-baseline", 2, None, "Ground truth", budget=24 * 24, limits=models.limits)
    gt_fig = np.asarray(models.compare(gt_job).figure())
    ph, pw = hiif.figure.panel_size(*gt_job.region[2:])
    top, left, rh, rw = gt_job.region
    x = hiif.figure.GAP + 5 * (pw + hiif.figure.GAP)
    crop = hr[top:top + rh, left:left + rw]
    assert np.array_equal(gt_fig[hiif.figure.GAP:hiif.figure.GAP + ph, x:x + pw],
                          crop.repeat(ph // rh, 0).repeat(pw // rw, 1))


def test_too_large_for_a_whole_render(models):
    job = demo.plan_job(IMAGE, "EDSR-baseline", 30, limits=models.limits)  # 360×480 > 100k px
    with pytest.raises(demo.DemoError, match="exceeds"):
        demo.whole_job(job, models.limits)
    comparison = demo.Comparison(job, {})
    offer, text = demo.full_render_offer(comparison, models.limits)
    assert not offer and "regions only" in text


def test_time_limit_stops_a_job_with_a_message_and_the_models_serve_on(models):
    slow = demo.ModelSet("cpu", limits(job_seconds=1e-6), names=["hiif-edsr"], loader=random_loader)
    job = demo.plan_job(IMAGE, "EDSR-baseline", 3, limits=slow.limits)
    with pytest.raises(demo.DemoError, match="time limit of 0 s per request"):
        slow.compare(job, methods=["hiif"])
    slow.limits = models.limits  # the same models, a generous limit: the job completes
    assert slow.compare(job, methods=["hiif"]).results["hiif"].image.shape == (36, 48, 3)
    assert demo.device_limits("cpu").job_seconds == 1200


def test_the_demo_zooms_hiif_against_another_method_into_the_chosen_point(models, tmp_path):
    job = demo.plan_job(IMAGE, "EDSR-baseline", 3, None, "Upscale", (0.25, 0.75), limits=models.limits)
    zoom = models.zoom(job, "liif")
    assert list(zoom.crops) == ["LIIF-EDSR-baseline", "HIIF-EDSR-baseline"]  # HIIF on the right
    h, w = job.lr.size  # 12×16: frames of the 16-px minimum, so the zoom starts at ×16/12
    assert len(zoom.frames) == demo.ZOOM_FRAMES_APP and zoom.scales[-1] == pytest.approx(3)
    assert zoom.scales[0] == pytest.approx(16 / 12) and zoom.crops["HIIF-EDSR-baseline"][0].shape == (16, 16, 3)
    top, left, wh, ww = zoom.windows[-1]  # the last window is centred on the point chosen
    assert (left + ww / 2, top + wh / 2) == (pytest.approx(0.75 * w, abs=0.5), pytest.approx(0.25 * h, abs=0.5))
    path, info = demo.zoom_file(models, job, "LIIF", tmp_path)
    with Image.open(path) as im:
        assert im.format == "WEBP" and im.n_frames == 2 * demo.ZOOM_FRAMES_APP - 2 and "x3_edsr-zoom" in path.name
    assert info["methods"] == list(zoom.crops) and info["frames"] == demo.ZOOM_FRAMES_APP
    for versus, message in [("hiif", "against bicubic, liif or lte"), ("vgg", "against bicubic")]:
        with pytest.raises(demo.DemoError, match=message):
            models.zoom(job, versus)
    with pytest.raises(demo.DemoError, match="one scale for both axes"):
        models.zoom(demo.plan_job(IMAGE, "EDSR-baseline", 3, 2, limits=models.limits))
    with pytest.raises(demo.DemoError, match="starts at ×1"):
        models.zoom(demo.plan_job(IMAGE, "EDSR-baseline", 1, limits=models.limits))
    slow = demo.ModelSet("cpu", limits(job_seconds=1e-6), names=["hiif-edsr"], loader=random_loader)
    with pytest.raises(demo.DemoError, match="time limit"):
        slow.zoom(job, "bicubic")


def test_feature_cache_stays_within_budget():
    ms = demo.ModelSet("cpu", limits(cache_bytes=1), names=["hiif-edsr", "liif-edsr", "lte-edsr"],
                       loader=random_loader)
    other = 255 - IMAGE
    ms.compare(demo.plan_job(IMAGE, "EDSR-baseline", 2, limits=ms.limits))
    first = ms.cached_bytes()
    ms.compare(demo.plan_job(other, "EDSR-baseline", 2, limits=ms.limits))
    # only the most recently used entry survives a 1-byte budget
    assert 0 < ms.cached_bytes() <= first


def test_output_dir_removes_old_jobs(tmp_path):
    out = demo.OutputDir(tmp_path, max_age=0.0)
    first = out.new_job()
    (first / "x.png").write_bytes(b"1")
    import time
    time.sleep(0.01)
    second = out.new_job()
    assert second.is_dir() and not first.exists()


# -- examples ---------------------------------------------------------------------------------------
def test_examples_are_small_credited_and_loadable():
    folder = ROOT / "examples"
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    assert len(images) >= 4
    credits = (folder / "README.md").read_text()
    total = 0
    for path in images:
        assert f"`{path.name}`" in credits, f"{path.name} has no credit in examples/README.md"
        img = hiif.load_image(path)
        assert max(img.size) <= 1024
        total += path.stat().st_size
    assert total < 1_500_000
    assert "CC0" in credits and "public domain" in credits.lower()


@pytest.mark.parametrize("kwargs,message", [
    (dict(backbone="vgg"), "unknown backbone"), (dict(size=8), "region side"), (dict(size=256.5), "region side"), (dict(size="big"), "region side"),
    (dict(center=(16, 0)), "outside the 16×12 image"), (dict(center=(1, -1)), "outside"),
    (dict(center="middle"), "centre must be"), (dict(scale=0), "scale"), (dict(scale=(2, 31)), "scale"),
    (dict(image=None), "cannot use this image"), (dict(scale=20, ground_truth=True), "too small"),
    (dict(device="foo"), "unknown device"), (dict(max_input_pixels=0), "max_input_pixels"),
    (dict(max_input_pixels=1.5), "max_input_pixels")])
def test_library_compare_checks_its_arguments_before_loading(kwargs, message, monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("models were loaded before the arguments were checked")
    monkeypatch.setattr(demo, "ModelSet", refuse)
    args = dict(image=IMAGE, scale=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        hiif.compare(args.pop("image"), args.pop("scale"), **args)


def test_tiled_encodes_report_their_tiles():
    models = demo.ModelSet("cpu", limits(), names=["hiif-edsr"], loader=random_loader)
    models.entries["hiif-edsr"].upscaler.tile = 16  # as if memory were short: 16-px tiles
    image = (RNG.random((40, 48, 3)) * 255).astype(np.uint8)
    job = demo.plan_job(image, "EDSR-baseline", 2, limits=models.limits)
    texts = []
    models.compare(job, progress=lambda f, d: texts.append(d), methods=["hiif"])
    tiles = [d for d in texts if "tile" in d]
    assert tiles[0].endswith("tile 1 of 9") and tiles[-1].endswith("tile 9 of 9"), tiles


def test_the_figure_of_a_part_shows_where_it_lies_in_the_whole_picture(models):
    image = (RNG.random((120, 160, 1)) * 255).astype(np.uint8).repeat(3, 2)  # grey: only the box is red
    lim = limits(input_pixels=30 * 40)  # a part of ~1200 px around the point
    job = demo.plan_job(image, "EDSR-baseline", 2, None, "Upscale", (0.75, 0.25), budget=128 * 128, limits=lim)
    assert job.crop is not None and job.full  # the part's output fits the preview
    fig = np.asarray(models.compare(job).figure())
    ph, pw = hiif.figure.panel_size(*job.out_hw)
    gap = hiif.figure.GAP
    cell = fig[gap:gap + ph, gap:gap + pw].astype(int)
    red = (cell[..., 0] > 200) & (cell[..., 1] < 60) & (cell[..., 2] < 60)
    ys, xs = np.nonzero(red)
    fit = min(ph / 120, pw / 160)
    top = (ph - round(120 * fit)) // 2
    ct, cl, ch, cw = job.crop
    assert abs(ys.min() - (top + ct * fit)) <= 1.5 and abs(xs.min() - cl * fit) <= 1.5
    assert abs(ys.max() - (top + (ct + ch) * fit - 1)) <= 1.5 and abs(xs.max() - ((cl + cw) * fit - 1)) <= 1.5


def test_scale_sweep_shows_one_window_at_each_scale():
    image = (RNG.random((30, 40, 3)) * 255).astype(np.uint8)
    fig = np.asarray(demo.scale_sweep(image, [2, 3.5], "bicubic", center=(10, 20), window=8))
    gap, side = hiif.figure.GAP, demo.SWEEP_PANEL_SIDES[0]  # 8·3.5 = 28 px: shown at 256
    assert fig.shape[1] == 3 * side + 4 * gap  # the input, then one panel a scale
    up = hiif.Upscaler("bicubic")
    enc = up.encode(image)
    for i, s in enumerate([2, 3.5], start=1):
        r = round(8 * s)
        region = up.render(enc, s, (round(16 * s), round(6 * s), r, r))  # the window: y 16-24, x 6-14
        expected = np.asarray(Image.fromarray(region).resize((side, side), Image.NEAREST))
        x = gap + i * (side + gap)
        assert np.array_equal(fig[gap:gap + side, x:x + side], expected), s


@pytest.mark.parametrize("kwargs,message", [
    (dict(scales="2,4"), "list of numbers"), (dict(scales=[]), "1 to 12 scales"), (dict(scales=[2] * 13), "1 to 12 scales"),
    (dict(scales=[0.5]), "scale"), (dict(scales=[2, float("nan")]), "scale"), (dict(scales=[(2, 3)]), "scale"),
    (dict(window=2), "window"), (dict(window=8.0), "window"), (dict(center=(40, 0)), "outside"),
    (dict(image=b"junk"), "cannot use this image"), (dict(device="foo"), "unknown device")])
def test_scale_sweep_checks_its_arguments_before_loading(kwargs, message, monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr(demo, "load_model", refuse)
    args = dict(image=IMAGE, scales=[2, 4], window=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        demo.scale_sweep(args.pop("image"), args.pop("scales"), "hiif-edsr", **args)


@pytest.mark.parametrize("threads, text", [(1, "CPU (1 thread)"), (2, "CPU (2 threads)")])
def test_device_text_counts_cpu_threads(threads, text):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert demo.ModelSet.device_text(type("Set", (), {"device": torch.device("cpu")})()) == text
    finally:
        torch.set_num_threads(before)


def test_cpu_server_estimates_hiif_statistics_within_a_grey_level():
    # the CPU server's smaller threshold (3x faster previews on a 2-core CPU) gives the picture of
    # exact whole-output statistics to within one grey level (trained weights: the formula ones'
    # attention is far more sensitive than a trained model's)
    assert demo.device_limits("cpu").stats_max_queries == demo.CPU_STATS_MAX_QUERIES
    assert demo.CPU_STATS_MAX_QUERIES < hiif.engine.STATS_MAX_QUERIES
    rgb = np.asarray(Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
                     .resize((64, 64), Image.BICUBIC))
    scale, region = 9, (256, 256, 48, 48)  # 576² = 331,776 output pixels: above 2^18, below 2^22
    assert demo.CPU_STATS_MAX_QUERIES < (64 * scale) ** 2 <= hiif.engine.STATS_MAX_QUERIES
    pictures = []
    for threshold in (hiif.engine.STATS_MAX_QUERIES, demo.CPU_STATS_MAX_QUERIES):
        up = hiif.Upscaler("hiif-edsr", "cpu", stats_max_queries=threshold)
        pictures.append(up.render(up.encode(rgb), scale, region=region).astype(int))
    assert np.abs(pictures[0] - pictures[1]).max() <= 1
