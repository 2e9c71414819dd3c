"""Weights I/O, the zoo, and the command line."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hiif
from hiif.weights import WeightsError, load_model, save_safetensors

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "hiif", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


def test_safetensors_round_trip_is_fp16_and_exact_to_fp16(tmp_path, formula_models):
    model = formula_models("hiif-edsr-baseline")
    path = save_safetensors(model, tmp_path / "m.safetensors", {"steps": 5})
    loaded = load_model(path)
    assert loaded.metadata["steps"] == "5"
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and b.dtype == a.dtype
        if a.is_floating_point():
            assert torch.equal(b, a.half().float())
    assert path.stat().st_size < 0.6 * sum(v.numel() * 4 for v in model.state_dict().values())


def test_saved_weights_are_readable_as_the_umask_allows(tmp_path, formula_models):
    umask = os.umask(0o022)
    try:
        path = save_safetensors(formula_models("liif-edsr-baseline"), tmp_path / "m.safetensors")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # others can load what a server exported
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left


def test_spec_dict_builds_fresh_model():
    model = load_model(hiif.ZOO["lte-edsr"])
    assert model.method == "lte"


@pytest.mark.parametrize("source,message", [
    ("no-such-model", "unknown model"),
    ("missing.safetensors", "no such weights file"),
    ("missing.pth", "no such checkpoint"),
])
def test_bad_sources_name_the_problem(source, message):
    with pytest.raises(WeightsError, match=message):
        load_model(source)


def test_zoo_name_without_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(hiif.weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsError, match="weights not installed"):
        load_model("hiif-rdn")


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"PK\x03\x04broken zip"])
def test_corrupt_files_give_clear_errors(tmp_path, content, formula_models):
    for suffix in (".safetensors", ".pth"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(content)
        with pytest.raises(WeightsError, match=str(path.name)):
            load_model(path)
    good = save_safetensors(formula_models("liif-edsr-baseline"), tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated.safetensors"):
        load_model(truncated)


def test_pickled_payloads_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"model": {"name": "liif", "args": {}, "sd": Evil()}}, path)
    with pytest.raises(WeightsError, match="evil.pth"):
        load_model(path)


def test_cli_upscale_and_models(tmp_path, formula_models):
    weights = save_safetensors(formula_models("liif-edsr-baseline"), tmp_path / "liif.safetensors")
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(1).random((9, 11, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out.png"
    r = run_cli("upscale", str(src), str(out), "--scale", "2.5,1.7", "--model", str(weights))
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (19, 22)
    r = run_cli("upscale", str(src), str(tmp_path / "b.png"), "--scale", "3.3", "--model", "bicubic")
    assert r.returncode == 0 and Image.open(tmp_path / "b.png").size == (36, 30)
    r = run_cli("models")
    assert r.returncode == 0 and "hiif-swinir" in r.stdout and "liif-rdn" in r.stdout


@pytest.mark.parametrize("case", ["not_image", "missing", "bad_scale", "nan_scale", "big_scale",
                                  "bad_model", "bad_output"])
def test_cli_errors_exit_2_with_one_line(tmp_path, case):
    src = tmp_path / "in.png"
    Image.new("RGB", (5, 4)).save(src)
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image")
    args = {
        "not_image": [str(text), str(tmp_path / "o.png"), "--scale", "2", "--model", "bicubic"],
        "missing": [str(tmp_path / "nope.png"), str(tmp_path / "o.png"), "--scale", "2", "--model", "bicubic"],
        "bad_scale": [str(src), str(tmp_path / "o.png"), "--scale", "0", "--model", "bicubic"],
        "nan_scale": [str(src), str(tmp_path / "o.png"), "--scale", "nan", "--model", "bicubic"],
        "big_scale": [str(src), str(tmp_path / "o.png"), "--scale", "31", "--model", "bicubic"],
        "bad_model": [str(src), str(tmp_path / "o.png"), "--scale", "2", "--model", "nonsense"],
        "bad_output": [str(src), str(tmp_path / "no" / "o.png"), "--scale", "2", "--model", "bicubic"],
    }[case]
    r = run_cli("upscale", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr


def test_model_card_has_a_row_for_every_shipped_weights_file():
    """weights/MODELS.md is the provenance of what ships: a weights file without its row (steps, time,
    hardware, measured PSNR) would be a model nobody can judge."""
    from safetensors import safe_open

    card = (ROOT / "weights" / "MODELS.md").read_text()
    shipped = sorted((ROOT / "weights").glob("*.safetensors"))
    for path in shipped:
        with safe_open(str(path), framework="pt") as f:
            steps = (f.metadata() or {}).get("steps")
        assert f"| {path.stem} | {steps} × " in card, f"{path.name}: no row (or other steps) in MODELS.md"


def test_model_card_is_what_the_record_and_the_weights_write():
    """weights/MODELS.md is generated from weights/results.json (the measured PSNR, kept in git) and
    the weights' metadata: editing a number by hand, or shipping weights without re-measuring and
    regenerating (`python -m hiif evaluate ... --record weights/results.json --card weights/MODELS.md`),
    fails here."""
    import json
    import os

    from hiif.evaluate import card_intro, model_card
    from hiif.weights import WEIGHTS_DIR

    if Path(WEIGHTS_DIR).resolve() != (ROOT / "weights").resolve() or "HIIF_WEIGHTS_DIR" in os.environ:
        pytest.skip("the card describes the repository's weights/")
    card = (ROOT / "weights" / "MODELS.md").read_text()
    record = json.loads((ROOT / "weights" / "results.json").read_text())
    assert model_card(record, card_intro(card)) == card
