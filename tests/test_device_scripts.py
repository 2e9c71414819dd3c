"""The lent-GPU workflow's file handling (scripts/device_*.sh), run here on stand-ins: what travels
stays under the tool's 64 MiB, and weights larger than the 16 MiB it returns per file come back
in parts, whole and checked."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("split") is None,
                                reason="needs git and coreutils")


def checkout(path: Path) -> Path:
    """A stand-in repository with the device scripts."""
    (path / "scripts").mkdir(parents=True)
    for script in ("device_prepare.sh", "device_fetch.sh", "device_finish.sh", "device_parts.sh"):
        shutil.copy(ROOT / "scripts" / script, path / "scripts" / script)
    git(path, "init", "-q")
    return path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout


def run(repo: Path, script: str, *args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(["bash", f"scripts/{script}", *args], cwd=repo, env=env, capture_output=True,
                          text=True)


def weights_file(path: Path, mib: int, steps: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor = torch.randint(-2**15, 2**15, (mib * MiB // 2,), dtype=torch.int16,
                           generator=torch.Generator().manual_seed(steps))
    save_file({"w": tensor}, str(path), metadata={"steps": str(steps), "train_seconds": "120",
                                                  "device": "NVIDIA H100 80GB HBM3"})
    return path.read_bytes()


def test_large_weights_come_back_in_parts_whole_and_checked(tmp_path):
    device, here = checkout(tmp_path / "device"), checkout(tmp_path / "here")
    originals = {n: weights_file(device / "runs" / "device" / f"{n}.safetensors", mib, i)
                 for i, (n, mib) in enumerate([("hiif-rdn", 25), ("liif-rdn", 25), ("lte-rdn", 25)])}

    out = tmp_path / "out"
    result = run(device, "device_fetch.sh", "hiif-rdn", "liif-rdn", "lte-rdn", out=out)
    assert result.returncode == 0, result.stderr
    returned = sorted(p.name for p in out.iterdir())
    assert len(returned) <= 8 and all(p.stat().st_size <= 16 * MiB for p in out.iterdir())
    assert sum(p.stat().st_size for p in out.iterdir()) <= 64 * MiB
    assert "device_fetch.sh lte-rdn" in result.stdout  # what did not fit: the next call's command
    assert not any(n.startswith("lte-rdn") for n in returned)

    out2 = tmp_path / "out2"
    assert run(device, "device_fetch.sh", "lte-rdn", out=out2).returncode == 0
    result = run(here, "device_finish.sh", str(out), str(out2))
    assert result.returncode == 0, result.stderr
    for name, data in originals.items():
        assert (here / "runs" / "device" / f"{name}.safetensors").read_bytes() == data
    assert "step 1, 2.0 min on NVIDIA H100" in result.stdout

    part = out2 / "lte-rdn.safetensors.part1"  # a part damaged on the way: refused, nothing kept
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    assert run(here, "device_finish.sh", str(out2)).returncode != 0
    assert not (here / "runs" / "device" / "lte-rdn.safetensors").exists()


def test_prepare_leaves_the_large_weights_behind_and_finish_puts_them_back(tmp_path):
    repo = checkout(tmp_path / "repo")
    (repo / ".gitignore").write_text("/data/\nruns/\n")
    weights_file(repo / "weights" / "hiif-edsr.safetensors", 1, 0)
    weights_file(repo / "weights" / "hiif-rdn.safetensors", 40, 1)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "weights")
    weights_file(repo / "weights" / "lte-swinir.safetensors", 30, 2)  # exported, not committed yet
    (repo / "data" / "pack").mkdir(parents=True)  # a pack built earlier
    (repo / "data" / "pack" / "manifest.tsv").write_text("name\n")

    result = run(repo, "device_prepare.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    travels = git(repo, "ls-files", "-c", "-o", "--exclude-standard").split()
    assert "weights/hiif-edsr.safetensors" in travels
    assert not any("rdn" in f or "swinir" in f for f in travels)
    assert "travels:" in result.stdout
    assert run(repo, "device_prepare.sh").returncode == 0  # twice is harmless

    result = run(repo, "device_finish.sh")
    assert result.returncode == 0, result.stderr
    assert git(repo, "status", "--short") == "?? weights/lte-swinir.safetensors\n"
    assert "weights/hiif-rdn.safetensors" in git(repo, "ls-files")


def test_weights_to_continue_go_in_parcels_that_each_fit_one_call(tmp_path):
    repo = checkout(tmp_path / "repo")
    (repo / ".gitignore").write_text("/data/\nruns/\n")
    originals = {m: weights_file(repo / "weights" / f"{m}-swinir.safetensors", mib, i)
                 for i, (m, mib) in enumerate([("hiif", 33), ("liif", 30), ("lte", 31)])}
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "weights")
    (repo / "data" / "pack").mkdir(parents=True)
    (repo / "data" / "pack" / "manifest.tsv").write_text("name\n")

    result = run(repo, "device_prepare.sh", "swinir")
    assert result.returncode == 0, result.stdout + result.stderr
    parcels = sorted((repo / "data" / "upload").iterdir())
    assert len(parcels) == 2 and 'carry=["data/upload/2"]' in result.stdout
    tree = sum((repo / f).stat().st_size for f in git(repo, "ls-files", "-c", "-o", "--exclude-standard").split())
    for parcel in parcels:  # each call: the tree and one parcel, within the tool's 64 MiB
        assert tree + sum(f.stat().st_size for f in parcel.iterdir()) <= 64 * MiB
        assert all(f.stat().st_size <= 16 * MiB for f in parcel.iterdir())
    # there, device_train.sh joins them back from all parcels with the helper every script shares
    join = subprocess.run(["bash", "-c", "source scripts/device_parts.sh && "
                           "join_parts data/upload/1/SHA256SUMS runs/device/start data/upload/*"],
                          cwd=repo, capture_output=True, text=True)
    assert join.returncode == 0, join.stderr
    for method, data in originals.items():
        assert (repo / "runs" / "device" / "start" / f"{method}-swinir.safetensors").read_bytes() == data
    (parcels[1] / "lte-swinir.safetensors.part1").unlink()  # a parcel that never arrived: refused
    join = subprocess.run(["bash", "-c", "source scripts/device_parts.sh && "
                           "join_parts data/upload/1/SHA256SUMS runs/device/start data/upload/*"],
                          cwd=repo, capture_output=True, text=True)
    assert join.returncode != 0 and "lte-swinir.safetensors: parts missing" in join.stderr
    assert run(repo, "device_finish.sh").returncode == 0
