"""Memory safety of encoding: inputs that would not fit are refused up front with one line, an
out-of-memory inside the encoder becomes the same kind of MemoryError, and ``hiif.upscale`` keeps no
features alive after it returns."""
from __future__ import annotations

import gc
import re
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hiif
import hiif.engine as engine
from hiif.engine import ENCODE_BYTES_PER_PIXEL, Upscaler, is_out_of_memory
from hiif.weights import ZOO

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
IMAGE = (RNG.random((13, 17, 3)) * 255).astype(np.uint8)
SMALL = (RNG.random((48, 64, 3)) * 255).astype(np.uint8)  # ~10+ MB to encode with any model
MB = 1_000_000


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hiif_rdn():
    """Random weights are enough: nothing here runs the RDN encoder."""
    torch.manual_seed(0)
    return hiif.create_model(ZOO["hiif-rdn"]).eval()


def available(monkeypatch, nbytes: int | None) -> list[int]:
    """Pretend ``nbytes`` are available; returns the list that counts the reads."""
    reads: list[int] = []

    def fake() -> int | None:
        reads.append(1)
        return nbytes

    monkeypatch.setattr(engine, "available_memory_bytes", fake)
    return reads


def forbid_encoder(monkeypatch, up: Upscaler) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the encoder ran although the input was refused")

    monkeypatch.setattr(up.model, "encode", fail)
    monkeypatch.setattr(up.model.encoder, "forward", fail)
    if up._fast is not None:
        monkeypatch.setattr(up._fast, "encode", fail)


def test_table_covers_the_zoo():
    assert set(ENCODE_BYTES_PER_PIXEL) == {tuple(name.split("-")) for name in ZOO}
    assert set(engine.HIIF_TABLES_BYTES_PER_PIXEL) == {"edsr", "rdn", "swinir"}
    # the tables only add memory
    assert all(engine.HIIF_TABLES_BYTES_PER_PIXEL[e] >= ENCODE_BYTES_PER_PIXEL[("hiif", e)]
               for e in engine.HIIF_TABLES_BYTES_PER_PIXEL)


@pytest.mark.parametrize("tile", [0, None], ids=["whole-only", "tiles-allowed"])
def test_too_large_is_refused_before_the_encoder_runs(monkeypatch, formula_models, tile):
    up = Upscaler(formula_models("hiif-edsr-baseline"), tile=tile)
    forbid_encoder(monkeypatch, up)
    image = np.zeros((3000, 4000, 3), np.uint8)
    reads = available(monkeypatch, 2_000 * MB)
    with pytest.raises(MemoryError) as info:
        up.encode(image)
    message = str(info.value)
    whole = 3000 * 4000 * ENCODE_BYTES_PER_PIXEL[("hiif", "edsr")]  # 12 MP: no HIIF tables
    assert up.encode_memory_bytes((3000, 4000)) == whole
    # tiles allowed: what even the smallest tiles need (the features kept for the whole image)
    need = whole if tile == 0 else up.tiled_memory_bytes((3000, 4000), engine.MIN_TILE)
    assert need < whole or tile == 0
    assert "\n" not in message and reads == [1] and up.cached() == {}
    how = "" if tile == 0 else " in tiles"
    assert message.startswith(f"hiif-edsr needs ~{need / 1e9:.1f} GB to encode a 4000×3000 image{how}, "
                              "2.0 GB are available: use an input of at most ")
    assert "backbone" not in message  # EDSR-baseline is already the smallest
    # the suggestion keeps the aspect ratio and fits what is available
    mp, w, h = re.search(r"at most ([\d.]+) MP \(e\.g\. downscale it to (\d+)×(\d+)\)", message).groups()
    w, h = int(w), int(h)
    assert abs(w / h - 4 / 3) < 0.01 and abs(w * h / 1e6 - float(mp)) < 0.05  # 'at most 1.2 MP'

    def estimate(frame):
        return up.encode_memory_bytes(frame) if tile == 0 else up.tiled_memory_bytes(frame, engine.MIN_TILE)
    assert estimate((h, w)) <= 2_000 * MB < estimate((h + 4, w + 4))


def test_heavier_backbones_are_told_about_a_smaller_one(monkeypatch, hiif_rdn):
    up = Upscaler(hiif_rdn)
    forbid_encoder(monkeypatch, up)
    available(monkeypatch, 1_500 * MB)
    with pytest.raises(MemoryError, match=r"^hiif-rdn needs ~.* GB to encode a 1000×800 image in tiles, 1\.5 GB is "
                                          r"available: use an input of at most 0\.\d\d MP .*"
                                          r"or a smaller backbone \(EDSR-baseline\)$"):
        up.encode(np.zeros((800, 1000, 3), np.uint8))


def test_hiif_tables_count_while_they_are_built(formula_models):
    up = Upscaler(formula_models("hiif-edsr-baseline"))
    per = ENCODE_BYTES_PER_PIXEL[("hiif", "edsr")]
    assert up._fast.builds_tables(256, 256) and not up._fast.builds_tables(1024, 1024)
    assert up.encode_memory_bytes((256, 256)) == 256 * 256 * engine.HIIF_TABLES_BYTES_PER_PIXEL["edsr"]
    assert up.encode_memory_bytes((1024, 1024)) == 1024 * 1024 * per
    oracle = Upscaler(up.model, fast=False)  # no tables on the reference path
    assert oracle.encode_memory_bytes((256, 256)) == 256 * 256 * per


def test_nothing_fits_says_to_free_memory(monkeypatch, formula_models):
    up = Upscaler(formula_models("liif-edsr-baseline"))
    forbid_encoder(monkeypatch, up)
    available(monkeypatch, 1 * MB)
    with pytest.raises(MemoryError, match=r"^liif-edsr needs ~\d+ MB to encode a 64×48 image, 1\.0 MB is "
                                          r"available: free memory"):
        up.encode(SMALL)


def test_checked_once_per_new_image_and_not_for_cached_ones(monkeypatch, formula_models):
    up = Upscaler(formula_models("hiif-edsr-baseline"), chunk=200)
    reads = available(monkeypatch, 10_000 * MB)
    enc = up.encode(IMAGE)
    assert len(reads) == 1
    up.render(enc, 3.3)  # 43×56 output in 13 chunks: no further reads
    up.render(enc, 2)
    assert len(reads) == 1
    reads = available(monkeypatch, 0)  # nothing left: a cached image still encodes (no check) …
    assert up.encode(IMAGE.copy()) is enc and reads == []
    with pytest.raises(MemoryError):  # … a new one does not
        up.encode(255 - IMAGE)
    assert len(reads) == 1


def test_unreadable_memory_is_not_checked(monkeypatch, formula_models):
    up = Upscaler(formula_models("liif-edsr-baseline"))
    available(monkeypatch, None)
    assert up.encode(IMAGE).features is not None


def test_bicubic_is_not_checked(monkeypatch):
    reads = available(monkeypatch, 0)
    Upscaler("bicubic").encode(IMAGE)
    assert reads == []


def test_available_memory_reads_this_machine():
    value = engine.available_memory_bytes()
    if Path("/proc/meminfo").is_file():
        assert value is not None and 0 < value < 1 << 50


def _cpu_allocator_failure(*args, **kwargs):
    return torch.empty(1 << 50)  # a real DefaultCPUAllocator failure (RuntimeError, not raised as OOM type)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("failure", [
    _cpu_allocator_failure,
    lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")),
    lambda *a, **k: (_ for _ in ()).throw(MemoryError()),
], ids=["cpu-allocator", "torch-oom", "python"])
def test_out_of_memory_inside_the_encoder_becomes_one_line(monkeypatch, formula_models, fast, failure):
    up = Upscaler(formula_models("lte-edsr-baseline"), fast=fast)
    available(monkeypatch, None)  # no up-front refusal: the encoder runs and fails
    monkeypatch.setattr(up.model.encoder, "forward", failure)
    with pytest.raises(MemoryError) as info:
        up.encode(IMAGE)
    message = str(info.value)
    assert message == "lte-edsr ran out of memory encoding a 17×13 image: use a smaller input (e.g. downscale it)"
    # raised outside the handler: the failed encoder's frames (and tensors) are not kept alive
    assert info.value.__cause__ is None and info.value.__context__ is None and up.cached() == {}


def test_other_encoder_errors_are_not_translated(monkeypatch, formula_models):
    up = Upscaler(formula_models("liif-edsr-baseline"))

    def broken(*args, **kwargs):
        raise RuntimeError("Given groups=1, weight of size [64, 3, 3, 3], expected input ...")

    monkeypatch.setattr(up.model.encoder, "forward", broken)
    with pytest.raises(RuntimeError, match="Given groups"):
        up.encode(IMAGE)


@pytest.mark.parametrize("error,expected", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 4503599627370496 bytes. Error code 12 (Cannot allocate memory)"), True),
    (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 bytes"), True),
    (torch.OutOfMemoryError("CUDA out of memory"), True),
    (MemoryError(), True),
    (RuntimeError("CUDA error: device-side assert triggered"), False),
    (ValueError("out of memory"), False),
])
def test_is_out_of_memory(error, expected):
    assert is_out_of_memory(error) is expected


@pytest.mark.parametrize("record", ["hiif-edsr-baseline", "lte-edsr-baseline"])
def test_upscale_keeps_the_model_but_not_the_features(monkeypatch, formula_models, record):
    up = Upscaler(formula_models(record), cache_size=1)
    key = ("memory-test", "cpu", None, "fp32")
    monkeypatch.setitem(engine._UPSCALERS, key, up)
    refs = []
    encode = up.encode

    def spy(image, progress=None):
        enc = encode(image, progress)
        refs.extend(weakref.ref(t) for t in enc.features.values() if isinstance(t, torch.Tensor))
        return enc

    monkeypatch.setattr(up, "encode", spy)
    out = hiif.upscale(IMAGE, 2.5, "memory-test", device="cpu")
    assert out.size == (42, 32) and engine._UPSCALERS[key] is up  # the model stays loaded
    gc.collect()
    assert up.cached() == {} and not up._stats and refs and all(r() is None for r in refs)
    # also when rendering fails
    monkeypatch.setattr(up, "render", lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):
        hiif.upscale(IMAGE, 2, "memory-test", device="cpu")
    assert up.cached() == {}


def test_cli_refusal_is_one_line_and_exit_2(tmp_path, formula_models):
    from hiif.weights import save_safetensors

    weights = save_safetensors(formula_models("hiif-edsr-baseline"), tmp_path / "m.safetensors", {})
    src = tmp_path / "in.png"
    Image.fromarray(SMALL).save(src)
    code = ("import sys, hiif.engine as e; e.available_memory_bytes = lambda: 1_000_000; "
            "from hiif.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "upscale", str(src), str(tmp_path / "out.png"),
                        "--scale", "2", "--model", str(weights)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.fullmatch(r"error: hiif-edsr needs ~\d+ MB to encode a 64×48 image, 1\.0 MB is available: "
                        r"free memory .+", lines[0])
    assert not (tmp_path / "out.png").exists()


def test_demo_shows_the_library_message(monkeypatch):
    from hiif import demo

    def loader(name, device):
        torch.manual_seed(0)
        return hiif.load_model(ZOO[name], device)

    lim = demo.Limits(device="cpu", preview_side=64, full_pixels=100_000, input_pixels=10_000, concurrency=1,
                      chunk=2048, stats_max_queries=1 << 20, cache_bytes=1 << 30)
    ms = demo.ModelSet("cpu", lim, names=["hiif-edsr"], loader=loader)
    job = demo.plan_job(SMALL, "EDSR-baseline", 2, limits=lim)
    available(monkeypatch, 1_000_000)
    with pytest.raises(demo.DemoError, match=r"^HIIF-EDSR-baseline: hiif-edsr needs ~\d+ MB to encode a 64×48 "
                                             r"image, 1\.0 MB is available: free memory"):
        ms.compare(job, methods=["hiif"])


def test_cli_out_of_memory_while_decoding_is_one_line_but_a_bug_keeps_its_traceback(
        tmp_path, formula_models, monkeypatch, capsys):
    """The decoding retry's last word is torch's OutOfMemoryError (a RuntimeError, not a
    MemoryError): the CLI prints it as one line too; any other RuntimeError is a bug and propagates."""
    import hiif.engine
    from hiif.cli import main
    from hiif.weights import save_safetensors

    weights = save_safetensors(formula_models("liif-edsr-baseline"), tmp_path / "m.safetensors", {})
    src = tmp_path / "in.png"
    Image.fromarray(SMALL).save(src)
    args = ["upscale", str(src), str(tmp_path / "out.png"), "--scale", "2", "--model", str(weights), "--quiet"]

    def out_of_memory(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory even with chunks of 1 queries\nmore detail")
    monkeypatch.setattr(hiif.engine.Upscaler, "render_to_png", out_of_memory)
    assert main(args) == 2
    assert capsys.readouterr().err == "error: CUDA out of memory even with chunks of 1 queries\n"

    def bug(*a, **k):
        raise RuntimeError("shape mismatch")
    monkeypatch.setattr(hiif.engine.Upscaler, "render_to_png", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(args)
