"""scripts/train_further.sh on stand-ins: a further annealed cycle of one encoder's committed trio,
in equal rounds, that a rerun after an interruption finishes instead of starting anew."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from hiif.train import Config, Trainer
from hiif.weights import load_safetensors

ROOT = Path(__file__).resolve().parent.parent
ENCODER = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 1, "n_feats": 8}}
MODELS = {
    "hiif": {"name": "hiif", "args": {"encoder_spec": ENCODER, "hidden_dim": 16, "blocks": 2}},
    "liif": {"name": "liif", "args": {"encoder_spec": ENCODER, "imnet_spec": {
        "name": "mlp", "args": {"out_dim": 3, "hidden_list": [16]}}}},
    "lte": {"name": "lte", "args": {"encoder_spec": ENCODER, "hidden_dim": 16, "imnet_spec": {
        "name": "mlp", "args": {"out_dim": 3, "hidden_list": [16]}}}},
}


def stand_in(repo: Path) -> dict[str, str]:
    """A checkout with the script, three tiny configs and their committed weights (step 4)."""
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "train_further.sh").write_text((ROOT / "scripts" / "train_further.sh").read_text())
    photos = repo / "data" / "trainset"
    photos.mkdir(parents=True)
    for i in range(2):
        pixels = (np.random.default_rng(i).random((64, 80, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(photos / f"{i}.png")
    (repo / "configs").mkdir()
    for method, model in MODELS.items():
        raw = {"name": f"{method}-tiny", "model": model, "data": {"train_dir": "data/trainset", "patch": 16, "queries": 32},
               "optim": {"lr": 1e-3, "batch": 2, "steps": 4, "warmup": 2, "min_lr": 1e-5}, "precision": "fp32",
               "ema": 0.9}
        (repo / "configs" / f"{method}-tiny.yaml").write_text(yaml.safe_dump(raw))
        trainer = Trainer(Config.load(repo / "configs" / f"{method}-tiny.yaml"), run_dir=repo / "first" / method,
                          data_dir=photos, progress=False)
        trainer.train()
        trainer.export(repo / "weights" / f"{method}-tiny.safetensors")
    return dict(os.environ, PYTHONPATH=str(ROOT), HIIF_WEIGHTS_DIR=str(repo / "weights"), OMP_NUM_THREADS="1")


def test_a_further_cycle_runs_in_equal_rounds_and_a_rerun_finishes_it(tmp_path):
    repo = tmp_path / "repo"
    env = stand_in(repo)
    committed = {m: (repo / "weights" / f"{m}-tiny.safetensors").read_bytes() for m in MODELS}

    def further(*args: str, methods: str = "hiif liif lte") -> str:
        done = subprocess.run(["bash", "scripts/train_further.sh", "tiny", *args], cwd=repo,
                              env=dict(env, METHODS=methods), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    log = further("6", "3", "5e-4")
    # "=== round K NAME to step N <date>": round 1 brings all three to step 7, round 2 to 10
    rounds = [line.split()[2:7] for line in log.splitlines() if line.startswith("=== round")]
    assert [(r[0], r[1], r[4]) for r in rounds] == [(k, f"{m}-tiny", n) for k, n in (("1", "7"), ("2", "10"))
                                                     for m in MODELS]
    for method in MODELS:
        cycle = yaml.safe_load((repo / "runs" / "further" / f"{method}-tiny.yaml").read_text())["optim"]
        assert (cycle["restart_at"], cycle["steps"], cycle["restart_lr"]) == (4, 10, 5e-4)
        meta = load_safetensors(repo / "runs" / "further" / f"{method}-tiny.safetensors").metadata
        assert meta["steps"] == "10" and len(json.loads(meta["earlier_cycles"])) == 1
        # the committed weights are replaced by hand, after an evaluation shows a gain
        assert (repo / "weights" / f"{method}-tiny.safetensors").read_bytes() == committed[method]

    # a rerun (after an interruption, say) keeps the recorded cycle instead of starting another
    # from the exports' step 10 (two methods: each python start costs seconds)
    further("6", "3", methods="hiif lte")
    for method in ("hiif", "lte"):
        cycle = yaml.safe_load((repo / "runs" / "further" / f"{method}-tiny.yaml").read_text())["optim"]
        assert (cycle["restart_at"], cycle["steps"]) == (4, 10)


def test_a_new_cycle_refuses_a_checkpoint_left_by_an_earlier_run(tmp_path):
    repo = tmp_path / "repo"
    env = stand_in(repo)
    stale = repo / "runs" / "liif-tiny"
    stale.mkdir(parents=True)
    (stale / "checkpoint.pt").write_bytes(b"from an earlier cycle")
    done = subprocess.run(["bash", "scripts/train_further.sh", "tiny", "6", "3"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "runs/liif-tiny/checkpoint.pt belongs to an earlier run" in done.stderr
    assert not list((repo / "runs").glob("further/*.yaml"))  # no cycle half-started, not even hiif's


def test_two_lanes_train_two_models_at_once_but_never_one_model_twice(tmp_path):
    repo = tmp_path / "repo"
    # two models in two lanes: a lane that finishes round 1 first takes the other model's round 2
    # while that model's round 1 may still run, which is what its lock must prevent
    methods = ("hiif", "lte")
    env = dict(stand_in(repo), LANES="2", METHODS=" ".join(methods))
    done = subprocess.run(["bash", "scripts/train_further.sh", "tiny", "16", "8"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rounds = sorted(tuple(line.split()[i] for i in (2, 3, 6)) for line in done.stdout.splitlines() if line.startswith("=== round"))
    assert rounds == sorted((k, f"{m}-tiny", n) for k, n in (("1", "12"), ("2", "20")) for m in methods)
    assert done.stdout.rstrip().splitlines()[-1].startswith("=== done")
    assert not (repo / "runs" / "further" / "liif-tiny.yaml").exists()  # METHODS left it out
    for method in methods:
        meta = load_safetensors(repo / "runs" / "further" / f"{method}-tiny.safetensors").metadata
        assert meta["steps"] == "20"
        # every 10th step logged once, in order: two processes on one model would repeat steps
        logged = [int(row.split("\t")[0]) for row in
                  (repo / "runs" / f"{method}-tiny" / "log.tsv").read_text().splitlines()[1:]]
        assert logged == [10, 20]
        assert "step" in (repo / "runs" / "further" / f"{method}-tiny.log").read_text()
