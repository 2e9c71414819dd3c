"""Evaluation protocol: the published bicubic numbers, metrics, the CLI report."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hiif.evaluate import evaluate, make_pair
from hiif.metrics import psnr, ssim

ROOT = Path(__file__).resolve().parents[1]
SET5 = ROOT.parent / "shared" / "benchmarks" / "Set5"


def test_make_pair_follows_the_official_crop():
    hr = np.zeros((101, 77, 3), np.uint8)
    lr, crop = make_pair(hr, 3.5)
    assert lr.shape[:2] == (28, 22) and crop.shape[:2] == (98, 77)


def test_bicubic_on_set5_matches_the_protocol():
    if not SET5.is_dir():
        pytest.skip("Set5 not available")
    result = evaluate([], SET5, [2, 3, 4], progress=False)
    row = result["psnr"]["bicubic"]
    assert [round(row[k], 2) for k in ("2", "3", "4")] == [33.67, 30.40, 28.43]


def test_metrics_sanity():
    rng = np.random.default_rng(0)
    a = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + rng.integers(-5, 6, a.shape), 0, 255).astype(np.uint8)
    assert 30 < psnr(noisy, a) < 50 and 0.5 < ssim(noisy, a) < 1


def test_evaluate_cli_writes_table_json_and_plot(tmp_path, formula_models):
    from hiif.weights import save_safetensors
    data = tmp_path / "mini"
    data.mkdir()
    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((40, 36, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    weights = save_safetensors(formula_models("liif-edsr-baseline"), tmp_path / "m.safetensors")
    r = subprocess.run([sys.executable, "-m", "hiif", "evaluate", "--model", str(weights), "--data", str(data),
                        "--scales", "2,3.5", "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "p.png"),
                        "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "bicubic" in r.stdout and "×3.5" in r.stdout
    result = json.loads((tmp_path / "r.json").read_text())[0]
    assert set(result["psnr"]) == {"bicubic", str(weights)}
    assert Image.open(tmp_path / "p.png").size[0] > 100


def test_results_measured_in_pieces_merge_into_one_table():
    from hiif.evaluate import merge_results

    def piece(dataset, scales, offset):
        return {"dataset": dataset, "data": dataset, "protocol": "benchmark", "images": 5,
                "scales": scales, "precision": "fp32",
                "psnr": {n: {f"{s:g}": offset + s for s in scales} for n in ("bicubic", "m")},
                "seconds": {"bicubic": 1.0, "m": 2.0}}

    merged = merge_results([piece("Set14", [2, 3], 0), piece("Set5", [12, 30], 10),
                            piece("Set14", [12, 30], 0), piece("Set5", [2, 3], 10)])
    assert [r["dataset"] for r in merged] == ["Set14", "Set5"]
    set5 = merged[1]
    assert set5["scales"] == [2, 3, 12, 30]
    assert list(set5["psnr"]["m"]) == ["2", "3", "12", "30"] and set5["psnr"]["m"]["12"] == 22
    assert set5["seconds"] == {"bicubic": 2.0, "m": 4.0}
    bad = piece("Set5", [4], 0)
    bad["images"] = 4
    with pytest.raises(ValueError, match="different"):
        merge_results([piece("Set5", [2], 0), bad])


def test_the_record_keeps_every_model_and_the_card_keeps_its_intro(tmp_path, formula_models):
    from hiif.evaluate import card_intro, record_results
    from hiif.weights import save_safetensors

    def result(models, scales, value):
        return {"dataset": "Set5", "data": "Set5", "protocol": "benchmark", "images": 5, "scales": scales,
                "precision": "fp32", "seconds": {m: 1.0 for m in models},
                "psnr": {m: {f"{s:g}": value + s for s in scales} for m in models}}

    record = tmp_path / "results.json"
    record_results([result(["bicubic", "a"], [2, 4], 20)], record)
    merged = record_results([result(["bicubic", "b"], [4, 8], 30)], record)  # b measured later
    assert merged == json.loads(record.read_text())
    psnr = merged[0]["psnr"]
    assert merged[0]["scales"] == [2, 4, 8] and list(psnr) == ["bicubic", "a", "b"]
    assert psnr["a"] == {"2": 22, "4": 24} and psnr["b"] == {"4": 34, "8": 38}
    assert psnr["bicubic"] == {"2": 22, "4": 34, "8": 38}  # re-measured values replace old ones

    card = "# Model card\n\nHow these were trained.\n\n| model | steps × batch |\n|---|---:|\n"
    assert card_intro(card) == "How these were trained."

    # the CLI: measure one model into the record, and the card covers the whole record, intro kept
    data = tmp_path / "Set5"
    data.mkdir()
    Image.fromarray((np.random.default_rng(0).random((40, 36, 3)) * 255).astype(np.uint8)).save(data / "0.png")
    weights = save_safetensors(formula_models("liif-edsr-baseline"), tmp_path / "m.safetensors")
    (tmp_path / "MODELS.md").write_text(card)
    record = tmp_path / "cli.json"
    record_results([{**result(["bicubic", "a"], [2, 4], 20), "images": 1}], record)
    r = subprocess.run([sys.executable, "-m", "hiif", "evaluate", "--model", str(weights), "--data", str(data),
                        "--scales", "2", "--record", str(record), "--card", str(tmp_path / "MODELS.md"), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    written = (tmp_path / "MODELS.md").read_text()
    assert card_intro(written) == "How these were trained."
    assert f"| {weights} |" in written and "| a | 22.00 | 24.00 |" in written
