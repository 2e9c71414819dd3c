"""scripts/diff_budget.py counts a submission's diffs as the workplace does: text diffs plus, for
binary files, old and new bytes; a file added and later removed counts twice."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "diff_budget.py"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


def budget(repo: Path, *args: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=repo, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout


def test_binary_replacements_count_old_and_new(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "notes.txt").write_text("start\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "w.bin").write_bytes(b"\0" * 300_000)  # added: 300,000
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add")
    (repo / "w.bin").write_bytes(b"\0\1" * 100_000)  # replaced: 300,000 + 200,000
    git(repo, "commit", "-q", "-am", "replace")
    git(repo, "rm", "-q", "w.bin")                  # removed: 200,000
    git(repo, "commit", "-q", "-m", "remove")
    code, out = budget(repo, base)
    total = float(re.search(r"total\s+([\d.]+) MiB", out).group(1))
    binary = (300_000 + 500_000 + 200_000) / 2**20
    assert code == 0 and out.count("binary: w.bin") == 3
    assert abs(total - binary) < 0.01  # plus three small text diffs (printed to 0.01 MiB)
    code, out = budget(repo, base, "--limit-mib", "0.5")
    assert code == 1 and "OVER the limit" in out
    new = tmp_path / "new.bin"
    new.write_bytes(b"\2" * 100_000)
    code, out = budget(repo, base, "--plan", str(tmp_path / "absent.bin"), str(new))
    assert f"{100_000 / 2**20:8.2f} MiB" in out and code == 0
