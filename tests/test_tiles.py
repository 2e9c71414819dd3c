"""Tiled encoding: the encoder runs block by block (with context) when a whole image would not fit,
and the stitched features give the same pictures (exactly for the convolutional encoders)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hiif
import hiif.engine as engine
from hiif.engine import MIN_TILE, Upscaler, encode_in_tiles, tile_geometry, tile_grid
from hiif.fast import conv3x3_flat
from hiif.models.encoders import rdn as rdn_module

pytestmark = pytest.mark.usefixtures("one_thread")

RNG = np.random.default_rng(3)
IMAGE = (RNG.random((150, 170, 3)) * 255).astype(np.uint8)
MB = 1_000_000


def small_spec(method: str, encoder: str) -> dict:
    encoders = {
        "edsr": {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 2, "n_feats": 16}},
        "rdn": {"name": "rdn", "args": {"no_upsampling": True, "G0": 16, "RDNconfig": "T"}},
        "swinir": {"name": "swinir", "args": {"no_upsampling": True, "embed_dim": 16, "depths": [2, 2],
                                              "num_heads": [2, 2], "num_feat": 16}},
    }
    enc = encoders[encoder]
    if method == "liif":
        return {"name": "liif", "args": {"encoder_spec": enc, "imnet_spec": {
            "name": "mlp", "args": {"out_dim": 3, "hidden_list": [32, 32]}}}}
    if method == "lte":
        return {"name": "lte", "args": {"encoder_spec": enc, "imnet_spec": {
            "name": "mlp", "args": {"out_dim": 3, "hidden_list": [32, 32]}}, "hidden_dim": 32}}
    return {"name": "hiif", "args": {"encoder_spec": enc, "hidden_dim": 32, "blocks": 2}}


@pytest.fixture()
def tiny_rdn_config(monkeypatch):
    # 2 dense blocks of 2 layers (growth 8): the RDN wiring (dense concatenation, local and global
    # fusion) with a receptive field small enough for tiles to matter on a test image
    monkeypatch.setitem(rdn_module.RDN_CONFIGS, "T", (2, 2, 8))


def small_model(method: str, encoder: str) -> hiif.ImplicitSR:
    torch.manual_seed(0)
    return hiif.create_model(small_spec(method, encoder)).eval()


def raw(up: Upscaler, image, scale=2.5) -> np.ndarray:
    return up.render(up.encode(image), scale, raw=True)


def count_encoder_calls(monkeypatch, model) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    forward = model.encoder.forward

    def spy(x):
        sizes.append(tuple(x.shape[-2:]))
        return forward(x)

    monkeypatch.setattr(model.encoder, "forward", spy)
    return sizes


@pytest.mark.parametrize("encoder,radius", [("edsr", 1 + 2 * 2 + 1), ("rdn", 2 + 2 * 2 + 1)])
def test_receptive_radius_bounds_what_one_pixel_changes(tiny_rdn_config, encoder, radius):
    enc = small_model("liif", encoder).encoder
    assert enc.receptive_radius == radius and tile_geometry(enc) == (radius, 1, True)
    x = torch.rand(1, 3, 41, 41) * 2 - 1
    y = x.clone()
    y[..., 20, 20] += 1
    with torch.no_grad():
        changed = (enc(x) - enc(y)).abs().amax(dim=1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach = max((rows - 20).abs().max().item(), (cols - 20).abs().max().item())
    assert reach == radius  # reached, never exceeded: the tile context is tight and sufficient


def test_tile_grid_covers_the_image_once():
    corners = tile_grid((150, 170), 64)
    assert corners == [(t, l) for t in (0, 64, 128) for l in (0, 64, 128)]
    cover = np.zeros((150, 170), int)
    for t, l in corners:
        cover[t:t + 64, l:l + 64] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("encoder", ["edsr", "rdn"])
def test_tiled_encoder_map_equals_the_whole_one(tiny_rdn_config, encoder):
    enc = small_model("liif", encoder).encoder
    x = torch.rand(1, 3, 70, 93) * 2 - 1
    with torch.no_grad():
        whole = enc(x)
        ticks = []
        tiled = encode_in_tiles(enc, x, 16, enc.receptive_radius, lambda: ticks.append(1))
        short = encode_in_tiles(enc, x, 16, 1)  # too little context
    assert len(ticks) == 5 * 6
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    assert (short - whole).abs().max() > 1e-3


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("method", ["liif", "lte", "hiif"])
@pytest.mark.parametrize("encoder", ["edsr", "rdn"])
def test_forced_tiles_render_the_same_picture(monkeypatch, tiny_rdn_config, method, encoder, fast):
    model = small_model(method, encoder)
    whole = raw(Upscaler(model, fast=fast, tile=0), IMAGE)
    sizes = count_encoder_calls(monkeypatch, model)
    tiled = raw(Upscaler(model, fast=fast, tile=64), IMAGE)
    r = model.encoder.receptive_radius
    assert len(sizes) == 9 and max(max(s) for s in sizes) == 64 + 2 * r
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=2e-5)


def test_swinir_tiles_keep_whole_windows_and_come_close():
    model = small_model("liif", "swinir")
    context, align, exact = tile_geometry(model.encoder)
    assert (context, align, exact) == (32, 8, False)
    up = Upscaler(model, tile=20)  # rounded up to whole windows: 24
    assert up._requested_tile((152, 176)) == 24
    whole = raw(Upscaler(model, tile=0), IMAGE)
    tiled = raw(up, IMAGE)
    # not exact in theory (shifted windows reach further), within float noise in practice
    assert np.abs(tiled - whole).max() < 1e-3


@pytest.mark.parametrize("method", ["liif", "lte"])  # (HIIF's lookup tables make small tiled frames costly)
def test_tiles_start_only_when_the_whole_image_does_not_fit(monkeypatch, method):
    model = small_model(method, "edsr")
    expected = raw(Upscaler(model, tile=0), IMAGE)
    up = Upscaler(model)
    frame = IMAGE.shape[:2]
    whole_need = up.encode_memory_bytes(frame)
    tiled_need = up.tiled_memory_bytes(frame, MIN_TILE)
    assert tiled_need < whole_need
    monkeypatch.setattr(engine, "available_memory_bytes", lambda: whole_need)
    assert up.plan_tiles(frame, frame) is None  # fits: whole, exactly as without tiling
    monkeypatch.setattr(engine, "available_memory_bytes", lambda: tiled_need)
    tile = up.plan_tiles(frame, frame)
    assert tile is not None and tile < max(frame)  # 64 fits: evened out, three tiles of 57
    assert up.tiled_memory_bytes(frame, tile) <= tiled_need
    sizes = count_encoder_calls(monkeypatch, model)
    progress = []
    tiled = up.render(up.encode(IMAGE, progress=lambda done, total: progress.append((done, total))), 2.5, raw=True)
    assert len(sizes) == len(tile_grid(frame, tile)) > 1
    assert progress[:len(sizes)] == [(k, len(sizes)) for k in range(1, len(sizes) + 1)]
    np.testing.assert_allclose(tiled, expected, rtol=0, atol=2e-5)


def test_largest_tile_is_evened_out_over_the_image(monkeypatch):
    up = Upscaler(small_model("liif", "edsr"))
    frame = (300, 1000)
    budget = up.tiled_memory_bytes(frame, 600)
    tile = up._largest_tile(frame, budget)
    assert tile == 500  # at most 600 fits: two tiles of 500 rather than 600 + 400


def test_no_tiles_with_tile_0(monkeypatch):
    model = small_model("liif", "edsr")
    up = Upscaler(model, tile=0)
    frame = IMAGE.shape[:2]
    monkeypatch.setattr(engine, "available_memory_bytes", lambda: up.tiled_memory_bytes(frame, MIN_TILE))
    with pytest.raises(MemoryError, match=r"^liif-edsr needs ~\d+ MB to encode a 170×150 image, \d+ MB is available"):
        up.encode(IMAGE)


def test_even_tiles_that_do_not_fit_are_refused_in_one_line(monkeypatch):
    up = Upscaler(small_model("lte", "edsr"))
    image = np.zeros((600, 800, 3), np.uint8)
    monkeypatch.setattr(engine, "available_memory_bytes", lambda: up.tiled_memory_bytes((600, 800), MIN_TILE) - 1)
    with pytest.raises(MemoryError) as info:
        up.encode(image)
    message = str(info.value)
    assert "\n" not in message and " to encode a 800×600 image in tiles, " in message
    assert "use an input of at most" in message and up.cached() == {}


def test_out_of_memory_retries_in_smaller_tiles(monkeypatch):
    model = small_model("liif", "edsr")
    expected = raw(Upscaler(model, tile=0), IMAGE)
    forward = model.encoder.forward
    sizes = []

    def limited(x):  # an encoder that runs out of memory above 100×100 inputs (as on a GPU)
        sizes.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > 100 * 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return forward(x)

    monkeypatch.setattr(model.encoder, "forward", limited)
    monkeypatch.setattr(engine, "available_memory_bytes", lambda: None)
    up = Upscaler(model)
    np.testing.assert_allclose(raw(up, IMAGE), expected, rtol=0, atol=2e-5)
    assert sizes[0] == (150, 170) and max(sizes[-1]) <= 100  # whole, then halved tiles (85 + context)
    up0 = Upscaler(model, tile=0)
    with pytest.raises(MemoryError, match="ran out of memory encoding a 170×150 image"):
        up0.encode(IMAGE)


@pytest.mark.parametrize("tile", [-1, 8, 2.5, True, "64"])
def test_bad_tile_values_are_refused(tile):
    with pytest.raises(ValueError, match="tile must be"):
        Upscaler("bicubic", tile=tile)


def test_banded_table_convolution_equals_the_whole_one():
    feat = torch.randn(1, 8, 37, 23)
    weight, bias = torch.randn(12, 8, 3, 3), torch.randn(12)
    whole = conv3x3_flat(feat, weight, bias)
    for band_pixels in (23, 50, 23 * 5, 23 * 36):
        torch.testing.assert_close(conv3x3_flat(feat, weight, bias, band_pixels=band_pixels), whole,
                                   rtol=1e-5, atol=1e-5)
    expected = torch.nn.functional.conv2d(feat, weight, bias, padding=1)[0].permute(1, 2, 0).reshape(-1, 12)
    torch.testing.assert_close(whole, expected)


def test_feature_estimate_covers_what_is_kept(monkeypatch):
    for method in ("liif", "lte", "hiif"):
        for fast in (True, False):
            up = Upscaler(small_model(method, "edsr"), fast=fast)
            frame = (96, 80)
            monkeypatch.setattr(engine, "available_memory_bytes", lambda: None)
            enc = Upscaler(up.model, fast=fast, tile=32).encode(np.zeros((*frame, 3), np.uint8))
            kept = sum(t.numel() * t.element_size() for t in enc.features.values())
            assert kept <= frame[0] * frame[1] * up.feature_bytes_per_pixel(frame)


def test_cli_tile_option_gives_the_same_file(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from hiif.cli import main
    from hiif.weights import save_safetensors

    weights = save_safetensors(small_model("hiif", "edsr"), tmp_path / "m.safetensors", {},
                               spec=small_spec("hiif", "edsr"))
    src = tmp_path / "in.png"
    Image.fromarray(IMAGE).save(src)
    calls = []
    encode_in_tiles_ = engine.encode_in_tiles
    monkeypatch.setattr(engine, "encode_in_tiles", lambda *a, **k: calls.append(a[2]) or encode_in_tiles_(*a, **k))
    outputs = {}
    for tile in ("0", "64"):
        outputs[tile] = tmp_path / f"out{tile}.png"
        assert main(["upscale", str(src), str(outputs[tile]), "--scale", "2", "--model", str(weights),
                     "--tile", tile, "--quiet"]) == 0
    assert calls == [64]
    a, b = (np.asarray(Image.open(outputs[t])).astype(int) for t in ("0", "64"))
    assert a.shape == (300, 340, 3) and np.abs(a - b).max() <= 1  # float noise may flip a rounding
