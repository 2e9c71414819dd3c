"""The arbitrary-scale engine: sizes, chunk invariance, cached features, regions, scale checks."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

import hiif
import hiif.engine
from hiif.engine import Upscaler, validate_scale
from hiif.models.common import make_coord

RNG = np.random.default_rng(0)
IMAGE = (RNG.random((13, 17, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("scale,expected", [(3.3, (43, 56)), ((2.5, 1.7), (32, 29)), (30, (390, 510)),
                                            (1, (13, 17))])
def test_output_sizes(scale, expected):
    assert hiif.output_size((13, 17), scale) == expected
    assert hiif.upscale(IMAGE, scale, "bicubic").size == (expected[1], expected[0])


@pytest.mark.parametrize("record", ["hiif-edsr-baseline", "liif-rdn", "lte-swinir"])
def test_model_output_sizes(record, formula_models):
    up = Upscaler(formula_models(record))
    for scale, (h, w) in [(3.3, (43, 56)), ((2.5, 1.7), (32, 29))]:
        assert hiif.upscale(IMAGE, scale, up.model).size == (w, h)
    enc = up.encode(IMAGE[:4, :5])
    assert up.render(enc, 30).shape == (120, 150, 3)


@pytest.mark.parametrize("bad", [0, -2, 0.5, float("nan"), float("inf"), 30.01, 100, "3", None, True,
                                 (2, 0), (2,), (1, 2, 3), [float("nan"), 2]])
def test_bad_scales_raise_value_error(bad):
    with pytest.raises(ValueError, match="scale"):
        validate_scale(bad)
    with pytest.raises(ValueError, match="scale"):
        hiif.upscale(IMAGE, bad, "bicubic")


def test_scale_for_size_gives_exactly_the_size_asked_for():
    rng = np.random.default_rng(1)
    for _ in range(20_000):  # every lr size and target in range: round(h * H / h) must be H
        h, w = (int(v) for v in rng.integers(1, 5000, 2))
        H, W = int(rng.integers(h, 30 * h + 1)), int(rng.integers(w, 30 * w + 1))
        assert hiif.output_size((h, w), hiif.scale_for_size((h, w), W, H)) == (H, W)
    assert hiif.output_size((13, 17), hiif.scale_for_size((13, 17), width=40)) == (31, 40)  # aspect kept
    assert hiif.output_size((13, 17), hiif.scale_for_size((13, 17), height=39)) == (39, 51)
    assert hiif.upscale(IMAGE, hiif.scale_for_size((13, 17), 100, 20), "bicubic").size == (100, 20)
    assert hiif.upscale(IMAGE, model="bicubic", width=100, height=20).size == (100, 20)
    assert hiif.upscale(Image.fromarray(IMAGE), model="bicubic", height=39).size == (51, 39)
    with pytest.raises(ValueError, match="not both"):
        hiif.upscale(IMAGE, 2, "bicubic", width=40)
    with pytest.raises(ValueError, match="width of 16 px"):
        hiif.upscale(IMAGE, model="bicubic", width=16)


@pytest.mark.parametrize("width,height,message", [
    (16, None, "width of 16 px is ×0.941176 of the input's 17 px"), (None, 391, "×30.0769"),
    (40, 12, "height of 12"), (0, None, "positive whole number"), (None, 2.5, "positive whole number"),
    (True, None, "positive whole number"), (None, None, "give a width")])
def test_scale_for_size_refuses_sizes_out_of_range(width, height, message):
    with pytest.raises(ValueError, match=message):
        hiif.scale_for_size((13, 17), width, height)


def official_single_call(model, image, scale):
    """What the official code computes in one call over the whole output grid."""
    H, W = hiif.output_size(image.shape[:2], scale)
    inp = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    coord = make_coord((H, W)).unsqueeze(0)
    cell = torch.tensor([[2 / H, 2 / W]])
    if model.clamps_cell:
        cell = cell * torch.tensor([[max(H / image.shape[0] / 4, 1), max(W / image.shape[1] / 4, 1)]])
    with torch.no_grad():
        return model.query_points(model.encode(inp), coord, cell)[0].reshape(H, W, 3).numpy()


@pytest.mark.parametrize("record", ["liif-edsr-baseline", "lte-edsr-baseline", "hiif-edsr-baseline"])
@pytest.mark.parametrize("scale", [(2.5, 1.7), 6.5])
def test_chunking_does_not_change_the_output(record, scale, formula_models):
    model = formula_models(record)
    reference = official_single_call(model, IMAGE, scale)
    for chunk in (97, 1000):
        up = Upscaler(model, chunk=chunk)
        out = up.render(up.encode(IMAGE), scale, raw=True)
        assert np.abs(out - reference).max() <= 1e-4, chunk


def test_hiif_naive_chunking_would_differ(formula_models):
    """Guards the reason for the statistics passes: per-chunk attention is not the same picture."""
    model = formula_models("hiif-edsr-baseline")
    reference = official_single_call(model, IMAGE, 3)
    inp = (torch.from_numpy(IMAGE).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    coord = make_coord(reference.shape[:2]).unsqueeze(0)
    cell = torch.tensor([[2 / reference.shape[0], 2 / reference.shape[1]]])
    with torch.no_grad():
        feats = model.encode(inp)
        naive = torch.cat([model.query_points(feats, c, cell) for c in coord.split(100, dim=1)], 1)
    assert np.abs(naive[0].reshape(reference.shape).numpy() - reference).max() > 1e-3


@pytest.mark.parametrize("record", ["hiif-swinir", "liif-edsr-baseline"])
def test_cached_features_and_regions_are_pixel_identical(record, formula_models):
    model = formula_models(record)
    fresh = np.asarray(hiif.upscale(IMAGE, 3.3, model))
    up = Upscaler(model, chunk=500)
    enc = up.encode(IMAGE)
    assert up.encode(IMAGE.copy()) is enc  # cached by content
    np.testing.assert_array_equal(up.render(enc, 3.3), fresh)
    region = up.render(enc, 3.3, region=(7, 11, 20, 30))
    np.testing.assert_array_equal(region, fresh[7:27, 11:41])
    other = up.render(enc, (2.5, 1.7))  # any other scale from the same features
    np.testing.assert_array_equal(other, np.asarray(hiif.upscale(IMAGE, (2.5, 1.7), model)))


def test_swinir_padding_keeps_the_picture_aligned(formula_models):
    """A 13×17 input is padded to 16×24 for SwinIR; the output must cover the input only, so a
    constant-colour input stays nearly constant (no mirrored content leaking in)."""
    flat = np.full((13, 17, 3), 128, np.uint8)
    up = Upscaler(formula_models("lte-swinir"))
    out = up.render(up.encode(flat), 2)
    assert out.shape == (26, 34, 3)


def test_official_cell_rule_beyond_training_scale(formula_models):
    up = Upscaler(formula_models("hiif-edsr-baseline"))
    enc = up.encode(IMAGE)
    cell = up.cell_for(enc, (13 * 12, 17 * 12))
    assert torch.allclose(cell, torch.tensor([[2 / 156 * 3, 2 / 204 * 3]]))
    liif = Upscaler(formula_models("liif-edsr-baseline"))
    assert torch.allclose(liif.cell_for(liif.encode(IMAGE), (156, 204)), torch.tensor([[2 / 156, 2 / 204]]))


def test_alpha_is_kept(formula_models):
    rgba = np.dstack([IMAGE, np.full(IMAGE.shape[:2], 77, np.uint8)])
    out = hiif.upscale(Image.fromarray(rgba, "RGBA"), 2, formula_models("liif-edsr-baseline"))
    assert out.mode == "RGBA" and out.size == (34, 26)
    assert np.asarray(out)[..., 3].min() == 77


def test_progress_callback_reaches_total(formula_models):
    seen = []
    up = Upscaler(formula_models("hiif-edsr-baseline"), chunk=200)
    up.render(up.encode(IMAGE), 3, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]


def test_bf16_runs_as_float32_on_a_cpu_without_native_bf16(monkeypatch):
    """There oneDNN lacks bf16 kernels for some layers (the render would fail) and emulates the
    rest many times slower: the engine runs float32 and says so."""
    import hiif.engine

    cpu = torch.device("cpu")
    monkeypatch.setattr(hiif.engine, "native_cpu_bf16", lambda: False)
    up = Upscaler("bicubic", precision="bf16")
    assert up.precision == "fp32" and "bf16 is not native" in up.describe()
    assert hiif.engine.effective_precision("fp32", cpu) == "fp32"
    assert hiif.engine.effective_precision("bf16", torch.device("cuda")) == "bf16"
    for bad in ("int8", "fp64"):
        with pytest.raises(ValueError, match="precision must be"):
            hiif.engine.effective_precision(bad, cpu)
    with pytest.raises(ValueError, match="fp16 autocast is for CUDA"):
        hiif.engine.effective_precision("fp16", cpu)
    monkeypatch.setattr(hiif.engine, "native_cpu_bf16", lambda: True)
    up = Upscaler("bicubic", precision="bf16")
    assert up.precision == "bf16" and "not native" not in up.describe()


def test_native_bf16_means_the_instructions_not_what_onednn_emulates(monkeypatch):
    """oneDNN calls bf16 supported on any AVX-512 CPU, also where it emulates it 2-4x slower than
    float32 (an AVX-512 Xeon without BF16): on x86 only AVX-512 BF16 or AMX count."""
    import platform

    import hiif.engine

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for avx512_bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert hiif.engine.native_cpu_bf16() is native
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")  # no such probes there: oneDNN's answer
    assert hiif.engine.native_cpu_bf16() is True
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert hiif.engine.native_cpu_bf16() is False


needs_native_bf16 = pytest.mark.skipif(not hiif.engine.native_cpu_bf16(),
                                       reason="this CPU has no native bf16: the engine runs float32")


@needs_native_bf16
@pytest.mark.parametrize("record", ["lte-edsr-baseline", "hiif-edsr-baseline", "liif-edsr-baseline"])
def test_bf16_autocast_stays_close(record, formula_models):
    """bf16 is an option, not the default; with untrained formula weights (outputs far outside
    [-1, 1]) it must still track float32 closely relative to the signal."""
    model = formula_models(record)
    a_up, b_up = Upscaler(model), Upscaler(model, precision="bf16")
    a = a_up.render(a_up.encode(IMAGE), 2, raw=True)
    b = b_up.render(b_up.encode(IMAGE), 2, raw=True)
    assert np.abs(a - b).mean() < 0.05 * a.std()


@pytest.mark.parametrize("record,stage", [("liif-edsr-baseline", "query"), ("hiif-edsr-baseline", "level0")])
def test_out_of_memory_retries_with_smaller_chunks(record, stage, formula_models, monkeypatch):
    """A CUDA out-of-memory while decoding (simulated: chunks above 300 queries 'do not fit')
    halves the chunk until it fits; the picture is the one an unconstrained render gives."""
    import hiif.engine

    model = formula_models(record)
    expected = Upscaler(model, chunk=2000).render(Upscaler(model).encode(IMAGE), 3, raw=True)
    monkeypatch.setattr(hiif.engine, "MIN_OOM_CHUNK", 100)
    up = Upscaler(model, chunk=2000)
    original = getattr(up._fast, stage)
    calls = []

    def tight(tables, coord, *args):
        calls.append(coord.shape[0])
        if coord.shape[0] > 300:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(tables, coord, *args)

    monkeypatch.setattr(up._fast, stage, tight)
    with pytest.warns(RuntimeWarning) as record:
        out = up.render(up.encode(IMAGE), 3, raw=True)
    assert [str(w.message).split("chunks of ")[1] for w in record] == [f"{n} queries" for n in (1000, 500, 250)]
    assert up.chunk == 250 and calls[:3] == [39 * 51, 1000, 500]
    np.testing.assert_allclose(out, expected, atol=1e-5)

    up.chunk = 2000  # memory that never suffices: a clear error once the floor is reached
    monkeypatch.setattr(hiif.engine, "MIN_OOM_CHUNK", 500)
    with pytest.warns(RuntimeWarning), pytest.raises(torch.OutOfMemoryError, match="even with chunks of 500"):
        up.render(up.encode(IMAGE), 3)
