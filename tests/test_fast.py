"""The fast decoders (hiif.fast), as the engine uses them by default, against the straightforward
decoders (``model.query_points`` / ``Upscaler(fast=False)``), the oracle."""
import copy

import numpy as np
import pytest
import torch
from PIL import Image

import hiif
import hiif.engine
from hiif.engine import Upscaler
from hiif.fast import FastHIIF, fast_decoder, neighbours4
from hiif.models.common import local_neighbours, make_coord

RNG = np.random.default_rng(1)
IMAGE = (RNG.random((13, 17, 3)) * 255).astype(np.uint8)
TOL = 1e-4  # float32, normalised output space

RECORDS = ["liif-edsr-baseline", "lte-edsr-baseline", "hiif-edsr-baseline", "liif-swinir",
           "lte-swinir", "hiif-swinir"]


def oracle_render(model, image, scale, **kw):
    """The whole output in ONE ``model.query_points`` call (official single call; for SwinIR with
    the engine's window padding and coordinate mapping)."""
    up = Upscaler(model, fast=False, chunk=10 ** 9, **kw)
    return up.render(up.encode(image), scale, raw=True)


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("scale", [(2.5, 1.7), 4, 12])
def test_engine_fast_path_matches_oracle(record, scale, formula_models):
    model = formula_models(record)
    reference = oracle_render(model, IMAGE, scale)
    up = Upscaler(model)
    assert up.fast
    out = up.render(up.encode(IMAGE), scale, raw=True)
    assert out.shape == reference.shape
    assert np.abs(out - reference).max() <= TOL


@pytest.mark.parametrize("record", ["liif-edsr-baseline", "lte-swinir", "hiif-edsr-baseline"])
def test_chunks_and_regions_are_bit_identical(record, formula_models):
    """Any chunk size and any region give exactly the same values (also for HIIF, whose attention
    statistics are summed chunk-independently)."""
    model = formula_models(record)
    whole = None
    for chunk in (None, 97, 1000):
        up = Upscaler(model, chunk=chunk)
        out = up.render(up.encode(IMAGE), 3.3, raw=True)
        if whole is None:
            whole = out
        np.testing.assert_array_equal(out, whole)
        region = up.render(up.encode(IMAGE), 3.3, region=(5, 9, 21, 30), raw=True)
        np.testing.assert_array_equal(region, whole[5:26, 9:39])
        pixel = up.render(up.encode(IMAGE), 3.3, region=(7, 8, 1, 1), raw=True)  # one query
        # a single-row matrix product may take another BLAS kernel: equal to float rounding
        np.testing.assert_allclose(pixel, whole[7:8, 8:9], rtol=0, atol=1e-5)
    assert np.abs(whole - oracle_render(model, IMAGE, 3.3)).max() <= TOL


@pytest.mark.parametrize("record", ["liif-edsr-baseline", "lte-swinir", "hiif-swinir"])
def test_decoder_on_scattered_points(record, formula_models):
    """Arbitrary query points (not a grid, borders included) and a cell of another size."""
    model = formula_models(record)
    fd = fast_decoder(model)
    g = torch.Generator().manual_seed(3)
    inp = torch.rand((1, 3, 11, 19), generator=g) * 2 - 1
    coord = torch.rand((1, 500, 2), generator=g) * 2 - 1
    coord[0, :4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])
    cell = torch.tensor([[0.013, 0.021]])
    with torch.inference_mode():
        reference = model.query_points(model.encode(inp), coord, cell)[0]
        tables = fd.encode(inp)
        out = fd.query(tables, coord[0], cell[0])
    assert torch.abs(out - reference).max() <= TOL


def test_neighbours_are_bit_identical():
    g = torch.Generator().manual_seed(5)
    coord = torch.rand((1000, 2), generator=g) * 2.2 - 1.1
    for feat_hw, centre_hw in [((7, 9), None), ((8, 16), (5, 13))]:
        idx, rel = neighbours4(coord, feat_hw, centre_hw)
        for n, nb in enumerate(local_neighbours(coord[None], feat_hw, centre_hw)):
            assert torch.equal(idx[n], nb.index[0])
            assert torch.equal(rel[n], nb.rel_coord[0])


def test_hiif_level0_tables_and_direct_agree(formula_models):
    """Level 0 from the precomputed per-pixel tables (algebraic LayerNorm + Linear) and from
    gathered features (used when the tables would not fit) both match the oracle."""
    model = formula_models("hiif-edsr-baseline")
    fd = fast_decoder(model)
    inp = (torch.from_numpy(IMAGE).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    H, W = 41, 50
    coord = make_coord((H, W))
    cell = torch.tensor([2 / H, 2 / W])
    with torch.inference_mode():
        feats = model.encode(inp)
        ref_x, ref_local = model.level0(feats, coord[None], cell[None])
        reference = model.query_points(feats, coord[None], cell[None])[0]
        for tables in (True, False):
            t = fd.encode(inp, tables=tables)
            assert ("slots" in t) == tables
            x, local = fd.level0(t, coord, cell)
            assert torch.abs(x - ref_x[0]).max() <= TOL
            assert torch.equal(local, ref_local[0])
            assert torch.abs(fd.query(t, coord, cell) - reference).max() <= TOL


def test_hiif_cached_and_recomputed_passes_agree(formula_models):
    """Activations kept between the statistics passes, or recomputed (cache_bytes=0): same
    output; estimated statistics (sub-grid) agree with the oracle's estimate on the same grid."""
    model = formula_models("hiif-edsr-baseline")
    cached = Upscaler(model)
    recomputed = Upscaler(model, cache_bytes=0, chunk=300)
    a = cached.render(cached.encode(IMAGE), 3.3, raw=True)
    b = recomputed.render(recomputed.encode(IMAGE), 3.3, raw=True)
    np.testing.assert_array_equal(a, b)
    small = dict(stats_max_queries=500, chunk=400)
    fast = Upscaler(model, **small)
    slow = Upscaler(model, fast=False, **small)
    est = fast.render(fast.encode(IMAGE), 3.3, raw=True)
    assert np.abs(est - slow.render(slow.encode(IMAGE), 3.3, raw=True)).max() <= TOL
    assert np.abs(est - a).max() > 0  # an estimate (error measured in benchmarks/stats_error.py)


def test_weight_changes_are_picked_up(formula_models):
    model = copy.deepcopy(formula_models("liif-edsr-baseline"))
    up = Upscaler(model)
    enc = up.encode(IMAGE)
    before = up.render(enc, 2, raw=True)
    with torch.no_grad():
        model.imnet.layers[0].bias.add_(0.5)
    after = up.render(enc, 2, raw=True)  # stale features and derived weights are rebuilt
    assert np.abs(after - before).max() > 1e-3
    assert np.abs(after - oracle_render(model, IMAGE, 2)).max() <= TOL


def test_fast_option_and_unsupported_configurations(formula_models):
    model = formula_models("hiif-edsr-baseline")
    assert isinstance(fast_decoder(model), FastHIIF)
    assert not Upscaler(model, fast=False).fast
    other = hiif.create_model({"name": "liif", "args": {
        "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16, 16]}},
        "feat_unfold": False}})
    assert fast_decoder(other) is None
    up = Upscaler(other.eval())  # falls back to the model's own decoder
    assert not up.fast and up.render(up.encode(IMAGE), 2).shape == (26, 34, 3)


@pytest.mark.skipif(not hiif.engine.native_cpu_bf16(), reason="this CPU has no native bf16: the engine runs float32")
@pytest.mark.parametrize("record", ["liif-edsr-baseline", "hiif-edsr-baseline"])
def test_bf16_fast_path_stays_close(record, formula_models):
    model = formula_models(record)
    up = Upscaler(model, precision="bf16")
    out = up.render(up.encode(IMAGE), 3, raw=True)
    reference = oracle_render(model, IMAGE, 3)
    assert np.abs(out - reference).mean() < 0.05 * reference.std()


def test_render_to_png_streams_bands(tmp_path, formula_models):
    up = Upscaler(formula_models("hiif-edsr-baseline"), chunk=700)
    enc = up.encode(IMAGE)
    whole = up.render(enc, 3.3)
    size = up.render_to_png(enc, 3.3, tmp_path / "a.png", band_pixels=600)
    assert size == (whole.shape[1], whole.shape[0])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), whole)
    up.render_to_png(enc, 3.3, tmp_path / "r.png", region=(3, 4, 20, 25))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.png")), whole[3:23, 4:29])
    rgba = Image.fromarray(np.dstack([IMAGE, np.full(IMAGE.shape[:2], 77, np.uint8)]), "RGBA")
    up.render_to_png(rgba, 2, tmp_path / "b.png", band_pixels=100)
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "RGBA" and im.size == (34, 26)
        np.testing.assert_array_equal(np.asarray(im), np.asarray(up.upscale(rgba, 2)))


SMALL_ENCODER = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 1, "n_feats": 8}}
SMALL_SPECS = [
    {"name": "hiif", "args": {"encoder_spec": SMALL_ENCODER, "hidden_dim": 32, "blocks": 4}},
    {"name": "lte", "args": {"encoder_spec": SMALL_ENCODER, "hidden_dim": 32, "imnet_spec": {
        "name": "mlp", "args": {"out_dim": 3, "hidden_list": [24, 16]}}}},
    {"name": "liif", "args": {"encoder_spec": SMALL_ENCODER, "imnet_spec": {
        "name": "mlp", "args": {"out_dim": 3, "hidden_list": [24]}}}},
]


@pytest.mark.parametrize("spec", SMALL_SPECS, ids=lambda s: s["name"])
def test_other_widths(spec):
    """Configurations other than the official sizes (e.g. the training tests' small models)."""
    torch.manual_seed(0)
    model = hiif.create_model(spec).eval()
    assert fast_decoder(model) is not None
    out = Upscaler(model, chunk=300)
    out = out.render(out.encode(IMAGE), (2.5, 3.1), raw=True)
    assert np.abs(out - oracle_render(model, IMAGE, (2.5, 3.1))).max() <= TOL
