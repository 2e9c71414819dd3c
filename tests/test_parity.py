"""Every parity record of the official LIIF/LTE/HIIF code reproduces (float32, ≤ 1e-5 on the
reference machine's kind of CPU; elsewhere within float32's rounding noise: reference.assert_reproduces)."""
import pytest
import torch

import hiif
from reference import RECORDS, assert_reproduces, formula_state_dict, load_record, require_reference

CASES = [(r, c) for r in RECORDS for c in ("out50x55", "out240x288", "win8_x2")
         if c != "win8_x2" or r.endswith("swinir")]


@pytest.mark.parametrize("record", RECORDS)
def test_state_dict_layout_and_parameter_count(record):
    rec = load_record(record)
    model = hiif.create_model(rec["spec_dict"])
    layout = [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
    assert layout == [list(k) for k in rec["keys"]]
    assert sum(p.numel() for p in model.parameters()) == rec["num_params"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == rec["num_trainable_params"]


@pytest.mark.parametrize("record,case", CASES)
def test_outputs_match_official(record, case, formula_models):
    rec = load_record(record)
    c = rec["cases"][case]
    model = formula_models(record)
    inp = rec["lr"] if isinstance(c["inp"], str) else c["inp"]
    with torch.no_grad():
        assert_reproduces(lambda: model(inp, c["coord"], c["cell"]), c["out"])


@pytest.mark.parametrize("method", ["liif", "lte", "hiif"])
def test_official_checkpoint_loads_and_reproduces(method):
    ref = require_reference()
    model = hiif.load_model(ref / f"ckpt-{method}-edsr-baseline.pth")
    rec = load_record(f"{method}-edsr-baseline")
    c = rec["cases"]["out50x55"]
    with torch.no_grad():
        assert_reproduces(lambda: model(rec["lr"], c["coord"], c["cell"]), c["out"])


def test_module_prefix_checkpoint(tmp_path):
    """The released HIIF files carry DataParallel's 'module.' prefix."""
    ref = require_reference()
    ckpt = torch.load(ref / "ckpt-hiif-edsr-baseline.pth", weights_only=True)
    ckpt["model"]["sd"] = {"module." + k: v for k, v in ckpt["model"]["sd"].items()}
    path = tmp_path / "prefixed.pth"
    torch.save(ckpt, path)
    model = hiif.load_model(path)
    rec = load_record("hiif-edsr-baseline")
    c = rec["cases"]["out50x55"]
    with torch.no_grad():
        assert_reproduces(lambda: model(rec["lr"], c["coord"], c["cell"]), c["out"])


def test_pure_interface_matches_forward(formula_models):
    """encode/query hold no state: interleaving two images changes nothing."""
    rec = load_record("lte-edsr-baseline")
    model = formula_models("lte-edsr-baseline")
    c = rec["cases"]["out50x55"]
    def interleaved() -> torch.Tensor:
        f1 = model.encode(rec["lr"])
        model.encode(torch.zeros_like(rec["lr"]))
        return model.query(f1, c["coord"], c["cell"])
    with torch.no_grad():
        assert_reproduces(interleaved, c["out"])


@pytest.mark.parametrize("record", ["lte-edsr-baseline", "hiif-edsr-baseline"])
def test_the_parity_bound_still_catches_a_mistake(record, formula_models):
    """Even where the bound is float32's rounding noise (LTE-EDSR's is the largest), a systematic
    mistake fails: here a cell 1.5× too large."""
    rec = load_record(record)
    model = formula_models(record)
    c = rec["cases"]["out50x55"]
    wrong_cell = c["cell"] * 1.5
    with torch.no_grad(), pytest.raises(AssertionError, match="max abs error"):
        assert_reproduces(lambda: model(rec["lr"], c["coord"], wrong_cell), c["out"])
