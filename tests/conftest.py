import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # workers share the cores: one thread each, and for the processes they start (two OpenMP
    # threads beside another busy process wait for each other, benchmarks/RESULTS.md section 11)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def formula_models():
    """Formula-weighted models (reference README) by record name, built on demand."""
    from reference import formula_state_dict, load_record
    import hiif

    cache = {}

    def get(name: str):
        if name not in cache:
            rec = load_record(name)
            model = hiif.create_model(rec["spec_dict"])
            model.load_state_dict(formula_state_dict(model))
            model.spec = rec["spec_dict"]
            cache[name] = model.eval()
        return cache[name]

    return get


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one thread is faster, and much faster on a busy machine (the module's tests
    run with it: ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
