"""Command line: ``python -m hiif.data build-trainset DIR`` / ``python -m hiif.data pack-subset SRC DST``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line on stderr, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m hiif.data", description="Build and pack the hiif training photo set.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("build-trainset", help="download the Debian packages and extract the listed photos as PNG")
    b.add_argument("dir", help="output directory (created; existing correct photos are kept)")
    b.add_argument("--tsv", help="photo table (default: <repo>/../shared/trainset/photos.tsv)")
    b.add_argument("--downloads", help="keep/reuse .deb files here (default: temporary, removed)")
    b.add_argument("--jobs", type=int, default=1, help="threads converting photos (default 1)")
    b.add_argument("--package", action="append", dest="packages", help="only this package (repeatable)")
    b.add_argument("--compress-level", type=int, default=4, choices=range(10), metavar="0-9",
                   help="PNG zlib level (default 4)")
    b.add_argument("--quiet", action="store_true", help="no progress output")

    k = sub.add_parser("pack-subset", help="seeded random JPEG crops of a built set under a size budget")
    k.add_argument("src", help="directory written by build-trainset")
    k.add_argument("dst", help="output directory (empty, or an earlier pack)")
    k.add_argument("--max-mb", type=float, default=60, help="size budget in MB (10^6 bytes, default 60)")
    k.add_argument("--crop", type=int, default=480, help="crop side in pixels (default 480)")
    k.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .trainset import TrainsetError, build_trainset, pack_subset

    try:
        if args.command == "build-trainset":
            report = build_trainset(args.dir, photos_tsv=args.tsv, downloads_dir=args.downloads, jobs=args.jobs,
                                    packages=args.packages, compress_level=args.compress_level,
                                    progress=not args.quiet)
            print(report.summary())
            for w in report.warnings:
                print(f"warning: {w}", file=sys.stderr)
        else:
            report = pack_subset(args.src, args.dst, max_mb=args.max_mb, crop=args.crop, quality=args.quality,
                                 seed=args.seed, progress=not args.quiet)
            print(report.summary())
    except KeyboardInterrupt:
        print("python -m hiif.data: interrupted", file=sys.stderr)
        return 130
    except TrainsetError as e:
        if e.report is not None:
            print(e.report.summary(), file=sys.stderr)
        print(f"python -m hiif.data: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"python -m hiif.data: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
