"""How much of a submission's diff budget the commits since BASE use, before they are submitted.

The workplace refuses a submission whose diffs, added up as text over all its commits, exceed
256 MiB (a file added in one commit and removed in a later one counts twice). Weights are binary:
replacing a file counts its old and its new bytes, so the three RDN files (~45 MB each) cannot be
replaced in one submission (2 × 137 MB). This script adds up, per commit, the text diff and, for
each binary file changed, the sizes of its old and new versions, and says whether the total fits.

    python scripts/diff_budget.py BASE        # BASE: the commit the session started from
    python scripts/diff_budget.py BASE --plan weights/hiif-rdn.safetensors runs/further/hiif-rdn.safetensors

``--plan OLD NEW`` (repeatable) adds a replacement not committed yet. Exit code 1 when over budget.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

LIMIT = 256 * 1024 * 1024


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def blob_size(commit: str, path: str) -> int:
    try:
        return int(git("cat-file", "-s", f"{commit}:{path}").strip())
    except subprocess.CalledProcessError:  # absent on that side (added or deleted)
        return 0


def commit_cost(commit: str) -> tuple[int, int, list[str]]:
    """(text bytes, binary bytes, binary paths) of one commit against its first parent."""
    parent = f"{commit}^" if len(git("rev-list", "--parents", "-n", "1", commit).split()) > 1 else None
    text = len(git("show", "--format=", "--no-color", "--no-ext-diff", commit).encode())
    binary, paths = 0, []
    for line in git("show", "--format=", "--numstat", commit).splitlines():
        added, deleted, path = line.split("\t", 2)
        if added == "-" and deleted == "-":  # git's mark for a binary file
            binary += blob_size(commit, path) + (blob_size(parent, path) if parent else 0)
            paths.append(path)
    return text, binary, paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the commit the session started from")
    ap.add_argument("--plan", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                    help="a file replacement still to commit (old and new file)")
    ap.add_argument("--limit-mib", type=float, default=LIMIT / 2**20, help=argparse.SUPPRESS)
    args = ap.parse_args()
    limit = int(args.limit_mib * 2**20)
    total = 0
    for commit in git("rev-list", "--reverse", f"{args.base}..HEAD").split():
        text, binary, paths = commit_cost(commit)
        total += text + binary
        what = f", binary: {', '.join(paths)}" if paths else ""
        print(f"{commit[:9]} {(text + binary) / 2**20:8.2f} MiB{what}")
    for old, new in args.plan:
        cost = (os.path.getsize(old) if os.path.exists(old) else 0) + os.path.getsize(new)
        total += cost
        print(f"planned   {cost / 2**20:8.2f} MiB, {old} -> {new}")
    verdict = "fits" if total <= limit else "OVER the limit: the submission would be refused whole"
    print(f"total     {total / 2**20:8.2f} MiB of {limit / 2**20:.0f} MiB: {verdict}")
    return 0 if total <= limit else 1


if __name__ == "__main__":
    sys.exit(main())
