"""Reproducible builder for the training photo set listed in ``shared/trainset/photos.tsv``.

The 198 photos come from eight Debian bookworm packages.  :func:`build_trainset` fetches each
package with ``apt-get download``, unpacks it with ``dpkg -x`` into a temporary directory, takes
exactly the listed files (for gcompris-qt-data ``<file.rcc>:<path inside>``, read with
:mod:`hiif.data.rcc`), checks their size against the table and stores each as an RGB PNG named
``<package>__<sanitized path>.png``.  ``CREDITS.tsv`` and ``CREDITS.md`` record source and
licence of every file.  A rerun skips photos already present with the right size.

:func:`pack_subset` cuts seeded random HR crops from a built set into quality-95 JPEGs under a
size budget (with a manifest and the credits), e.g. for copying to a GPU machine.

Pixels are stored exactly as decoded: EXIF orientation is not applied (sizes match the table)
and ICC profiles are dropped.
"""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import numpy as np
from PIL import Image, PngImagePlugin

from .rcc import RccFile

__all__ = [
    "PACKAGE_VERSIONS",
    "Photo",
    "BuildReport",
    "PackReport",
    "TrainsetError",
    "default_photos_tsv",
    "read_photos_tsv",
    "output_name",
    "build_trainset",
    "pack_subset",
]

PathLike = Union[str, "os.PathLike[str]"]

# Versions the table was made from (shared/trainset/README.md).  They are requested first
# (``apt-get download NAME=VERSION``); if the archive no longer has one, the candidate version
# is used and the size check guards against changed files.
PACKAGE_VERSIONS: dict[str, str] = {
    "gcompris-qt-data": "3.1-2",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "lxqt-themes": "1.2.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "mate-backgrounds": "1.26.0-1",
    "tuxpaint-data": "1:0.9.28-sdl2-1",
    "palapeli-data": "4:22.12.3-1",
}

CREDITS_COLUMNS = ("file", "package", "version", "path", "width", "height", "licence", "notes")


class TrainsetError(RuntimeError):
    """A build or pack step failed; ``report`` (if any) holds what was done before."""

    def __init__(self, message: str, report: "BuildReport | None" = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Photo:
    package: str
    path: str
    width: int
    height: int
    licence: str = ""
    notes: str = ""
    min_side_ge_1000: bool = False
    jpeg_q: int | None = None
    x2_psnr_db: float | None = None

    @property
    def file_name(self) -> str:
        return output_name(self.package, self.path)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def rcc_split(self) -> tuple[str, str | None]:
        """(file inside the package, path inside the rcc or None)."""
        if ":" in self.path:
            outer, inner = self.path.split(":", 1)
            if outer.endswith(".rcc"):
                return outer, inner
        return self.path, None


@dataclass
class BuildReport:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    count: int = 0
    total_mp: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        s = (f"{self.count} photos ({self.total_mp:.1f} MP) in {self.out_dir}: {len(self.written)} written, "
             f"{len(self.skipped)} already present, {len(self.failures)} failed; {self.seconds:.0f} s")
        return s


@dataclass
class PackReport:
    out_dir: Path
    crops: int = 0
    images: int = 0
    bytes: int = 0
    complete: bool = False  # True when every tile of every photo fitted in the budget

    def summary(self) -> str:
        return (f"{self.crops} crops from {self.images} photos, {self.bytes / 1e6:.1f} MB in {self.out_dir}"
                + ("" if not self.complete else " (all tiles)"))


# ----------------------------------------------------------------------------------------------
# table

def default_photos_tsv() -> Path:
    """``<repo root>/../shared/trainset/photos.tsv`` (``$HIIF_PHOTOS_TSV`` overrides)."""
    env = os.environ.get("HIIF_PHOTOS_TSV")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root.parent / "shared" / "trainset" / "photos.tsv").resolve()


def _opt_int(s: str) -> int | None:
    s = s.strip()
    return int(s) if s else None


def _opt_float(s: str) -> float | None:
    s = s.strip()
    return float(s) if s else None


def read_photos_tsv(path: PathLike | None = None) -> list[Photo]:
    """Parse photos.tsv (tab separated, header row, no quoting)."""
    path = Path(path) if path is not None else default_photos_tsv()
    if not path.is_file():
        raise FileNotFoundError(f"photo table not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path}: empty")
    header = lines[0].split("\t")
    need = ("package", "path", "width", "height")
    missing = [c for c in need if c not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    col = {name: i for i, name in enumerate(header)}
    photos: list[Photo] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        cells += [""] * (len(header) - len(cells))
        get = lambda name: cells[col[name]].strip() if name in col else ""  # noqa: E731
        try:
            photos.append(Photo(
                package=get("package"),
                path=get("path"),
                width=int(get("width")),
                height=int(get("height")),
                licence=get("licence"),
                notes=get("notes"),
                min_side_ge_1000=get("min_side_ge_1000") == "yes",
                jpeg_q=_opt_int(get("jpeg_q")),
                x2_psnr_db=_opt_float(get("x2_psnr_dB")),
            ))
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: {e}") from None
    names: dict[str, Photo] = {}
    for p in photos:
        if p.file_name in names:
            raise ValueError(f"{path}: {p.package}:{p.path} and {names[p.file_name].path} map to the same "
                             f"output name {p.file_name}")
        names[p.file_name] = p
    return photos


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def output_name(package: str, path: str) -> str:
    """``<package>__<path without usr/share/ and extension, unsafe chars -> _>.png``."""
    p = path
    if p.startswith("usr/share/"):
        p = p[len("usr/share/"):]
    p = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", p)  # drop the image extension
    p = p.replace(".rcc:", "__")
    stem = f"{_UNSAFE.sub('_', package)}__{_UNSAFE.sub('_', p).strip('_.')}"
    if len(stem) > 200:  # keep file names portable
        import hashlib
        stem = stem[:180] + "_" + hashlib.sha1(stem.encode()).hexdigest()[:12]
    return stem + ".png"


# ----------------------------------------------------------------------------------------------
# packages

def _run(cmd: Sequence[str], cwd: PathLike | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _find_deb(directory: Path, package: str, version: str | None) -> Path | None:
    debs = sorted(directory.glob(f"{package}_*.deb"))
    if not debs:
        return None
    if version:
        tags = {f"_{version}_", f"_{version.replace(':', '%3a')}_", f"_{version.split(':', 1)[-1]}_"}
        exact = [d for d in debs if any(t in d.name for t in tags)]
        if exact:
            return exact[0]
    return max(debs, key=lambda d: d.stat().st_mtime)


def _download_deb(package: str, dest: Path, warn: Callable[[str], None]) -> Path:
    """``apt-get download`` into ``dest`` (reusing a .deb already there)."""
    want = PACKAGE_VERSIONS.get(package)
    found = _find_deb(dest, package, want)
    if found is not None and (want is None or _deb_version(found) == want):
        return found
    if shutil.which("apt-get") is None:
        raise TrainsetError(f"apt-get not found: cannot download {package} (pass a downloads dir holding {package}_*.deb)")
    specs = ([f"{package}={want}"] if want else []) + [package]
    updated = False
    errors: list[str] = []
    for spec in specs:
        for attempt in range(2):
            r = _run(["apt-get", "download", "-q", spec], cwd=dest)
            if r.returncode == 0:
                deb = _find_deb(dest, package, want if spec != package else None)
                if deb is None:
                    raise TrainsetError(f"apt-get download {spec} succeeded but no {package}_*.deb in {dest}")
                if spec == package and want:
                    warn(f"{package}: version {want} not available, used {_deb_version(deb)}")
                return deb
            errors.append(f"apt-get download {spec}: {_last_line(r.stderr or r.stdout)}")
            if updated or attempt:
                break
            # package lists missing or stale: refresh once, then retry
            u = _run(["apt-get", "update", "-q"])
            updated = True
            if u.returncode != 0:
                errors.append(f"apt-get update: {_last_line(u.stderr or u.stdout)}")
                break
    raise TrainsetError(f"cannot download {package}: " + "; ".join(errors))


def _deb_version(deb: Path) -> str:
    r = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if r.returncode != 0:
        raise TrainsetError(f"dpkg-deb -f {deb}: {_last_line(r.stderr)}")
    return r.stdout.strip()


def _extract_deb(deb: Path, dest: Path) -> None:
    r = _run(["dpkg", "-x", str(deb), str(dest)])
    if r.returncode != 0:
        raise TrainsetError(f"dpkg -x {deb.name}: {_last_line(r.stderr or r.stdout)}")


# ----------------------------------------------------------------------------------------------
# images

def _to_rgb(im: Image.Image, warn: Callable[[str], None], what: str) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 / 65535.0 if im.mode != "F" else 255.0
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        lo, _hi = rgba.getchannel("A").getextrema()
        if lo < 255:
            warn(f"{what}: has transparent pixels, composited over white")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgba = Image.alpha_composite(bg, rgba)
        return rgba.convert("RGB")
    return im.convert("RGB")


def _png_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size if im.format == "PNG" else None
    except (OSError, SyntaxError, ValueError):
        return None


def _convert_one(photo: Photo, data: bytes, out_path: Path, compress_level: int,
                 warn: Callable[[str], None]) -> None:
    what = f"{photo.package}:{photo.path}"
    with Image.open(io.BytesIO(data)) as im:
        if im.size != (photo.width, photo.height):
            raise TrainsetError(f"{what}: size {im.size[0]}x{im.size[1]}, table says {photo.width}x{photo.height}")
        im.load()
        rgb = _to_rgb(im, warn, what)
    info = PngImagePlugin.PngInfo()
    info.add_text("Source", f"Debian package {photo.package}: {photo.path}")
    if photo.licence:
        info.add_itxt("Copyright", photo.licence)
    tmp = out_path.with_name(out_path.name + ".part")
    try:
        rgb.save(tmp, format="PNG", compress_level=compress_level, pnginfo=info)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------------------------
# credits

def _read_credit_versions(out_dir: Path) -> dict[str, str]:
    path = out_dir / "CREDITS.tsv"
    versions: dict[str, str] = {}
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines:
            head = lines[0].split("\t")
            if "package" in head and "version" in head:
                ip, iv = head.index("package"), head.index("version")
                for ln in lines[1:]:
                    c = ln.split("\t")
                    if len(c) > max(ip, iv) and c[iv]:
                        versions[c[ip]] = c[iv]
    return versions


def _clean(s: str) -> str:
    return s.replace("\t", " ").replace("\n", " ").strip()


def _write_credits(out_dir: Path, photos: Iterable[Photo], versions: dict[str, str]) -> None:
    photos = sorted(photos, key=lambda p: p.file_name)
    rows = ["\t".join(CREDITS_COLUMNS)]
    for p in photos:
        rows.append("\t".join(_clean(str(v)) for v in (
            p.file_name, p.package, versions.get(p.package, ""), p.path, p.width, p.height, p.licence, p.notes)))
    (out_dir / "CREDITS.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    md = [
        "# Training photos: sources and licences",
        "",
        "Each PNG here is a photo taken unchanged (decoded, converted to RGB) from a Debian bookworm",
        "package. The images keep their own licences (CC-BY-SA, CC-BY, GPL/LGPL, CC0, public domain);",
        "anything that redistributes them must carry these credits. `CREDITS.tsv` has the same list.",
        "For gcompris-qt-data the path is `<Qt resource file>:<path inside it>`.",
        "",
        "| file | package (version) | original path | size | licence |",
        "|---|---|---|---|---|",
    ]
    esc = lambda s: _clean(s).replace("|", "\\|")  # noqa: E731
    for p in photos:
        ver = versions.get(p.package, "")
        md.append(f"| {esc(p.file_name)} | {esc(p.package)}{f' ({esc(ver)})' if ver else ''} | `{esc(p.path)}` | "
                  f"{p.width}×{p.height} | {esc(p.licence)} |")
    (out_dir / "CREDITS.md").write_text("\n".join(md) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# build

def _progress(total: int, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(total=total, unit="photo", dynamic_ncols=True, file=sys.stderr)
        except ImportError:
            pass

    class _Plain:
        def __init__(self) -> None:
            self.n = 0

        def update(self, k: int = 1) -> None:
            self.n += k
            if enabled and (self.n == total or self.n % 20 == 0):
                print(f"  {self.n}/{total} photos", file=sys.stderr, flush=True)

        def set_postfix_str(self, s: str) -> None:
            if enabled:
                print(f"  {s}", file=sys.stderr, flush=True)

        def write(self, s: str) -> None:
            print(s, file=sys.stderr, flush=True)

        def close(self) -> None:
            pass

    return _Plain()


def build_trainset(
    out_dir: PathLike,
    photos_tsv: PathLike | None = None,
    downloads_dir: PathLike | None = None,
    jobs: int = 1,
    packages: Sequence[str] | None = None,
    compress_level: int = 4,
    progress: bool = True,
    strict: bool = True,
) -> BuildReport:
    """Build (or complete) the photo set in ``out_dir``.

    photos_tsv: the table (default :func:`default_photos_tsv`).
    downloads_dir: where .deb files are kept and reused; default a temporary directory that is
        removed afterwards.
    jobs: threads decoding/encoding photos of one package (Pillow releases the GIL).
    packages: restrict to these packages (default all in the table).
    strict: raise :class:`TrainsetError` (carrying the report) if any photo failed.
    """
    t0 = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png.part"):
        stale.unlink()
    photos = read_photos_tsv(photos_tsv)
    if packages is not None:
        unknown = set(packages) - {p.package for p in photos}
        if unknown:
            raise ValueError(f"packages not in the table: {sorted(unknown)}")
        photos = [p for p in photos if p.package in set(packages)]
    report = BuildReport(out_dir=out)
    report.versions = _read_credit_versions(out)
    by_pkg: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        by_pkg[p.package].append(p)

    bar = _progress(len(photos), progress)

    def warn(msg: str) -> None:
        report.warnings.append(msg)
        bar.write(f"warning: {msg}")

    keep_debs = downloads_dir is not None
    if keep_debs:
        Path(downloads_dir).mkdir(parents=True, exist_ok=True)
    try:
        for package, pkg_photos in by_pkg.items():
            todo = []
            for p in pkg_photos:
                if _png_size(out / p.file_name) == (p.width, p.height):
                    report.skipped.append(p.file_name)
                    bar.update(1)
                else:
                    todo.append(p)
            if not todo:
                continue
            bar.set_postfix_str(f"{package}: download")
            with tempfile.TemporaryDirectory(prefix=f"hiif-{package}-") as tmp:
                tmpdir = Path(tmp)
                try:
                    deb_dir = Path(downloads_dir) if keep_debs else tmpdir
                    deb = _download_deb(package, deb_dir, warn)
                    report.versions[package] = _deb_version(deb)
                    bar.set_postfix_str(f"{package}: unpack")
                    root = tmpdir / "root"
                    _extract_deb(deb, root)
                    if not keep_debs:
                        deb.unlink()
                except TrainsetError as e:
                    report.failures.extend(f"{p.package}:{p.path}: {e}" for p in todo)
                    bar.write(f"error: {e}")
                    bar.update(len(todo))
                    continue
                bar.set_postfix_str(package)
                _convert_package(todo, root, out, jobs, compress_level, report, warn, bar)
    finally:
        bar.close()

    present = [p for p in photos if _png_size(out / p.file_name) == (p.width, p.height)]
    all_photos = read_photos_tsv(photos_tsv)
    if packages is not None:  # keep credits of photos from other packages already built
        present_names = {p.file_name for p in present}
        present += [p for p in all_photos if p.file_name not in present_names
                    and _png_size(out / p.file_name) == (p.width, p.height)]
    versions = {pkg: report.versions.get(pkg) or PACKAGE_VERSIONS.get(pkg, "") for pkg in {p.package for p in present}}
    _write_credits(out, present, versions)
    report.count = len([p for p in photos if p in present])
    report.total_mp = sum(p.megapixels for p in photos if p in present)
    report.seconds = time.monotonic() - t0
    if strict and report.failures:
        raise TrainsetError(f"{len(report.failures)} of {len(photos)} photos failed, first: {report.failures[0]}",
                            report)
    return report


def _convert_package(todo: list[Photo], root: Path, out: Path, jobs: int, compress_level: int,
                     report: BuildReport, warn: Callable[[str], None], bar) -> None:
    rccs: dict[str, RccFile] = {}

    def load(p: Photo) -> bytes:
        outer, inner = p.rcc_split
        src = root / outer
        if not src.is_file():
            raise TrainsetError(f"{p.package}:{p.path}: {outer} not in the package")
        if inner is None:
            return src.read_bytes()
        try:
            return rccs[outer].read(inner)
        except KeyError:
            raise TrainsetError(f"{p.package}:{p.path}: not in {outer}") from None

    # parse each rcc once, before the worker threads use it
    for p in todo:
        outer, inner = p.rcc_split
        if inner is not None and outer not in rccs and (root / outer).is_file():
            try:
                rccs[outer] = RccFile.open(root / outer)
                rccs[outer].entries()
            except (ValueError, OSError) as e:
                raise TrainsetError(f"{p.package}: cannot read {outer}: {e}") from None

    def work(p: Photo) -> None:
        _convert_one(p, load(p), out / p.file_name, compress_level, warn)

    def done(p: Photo, err: BaseException | None) -> None:
        if err is None:
            report.written.append(p.file_name)
        else:
            msg = str(err) if isinstance(err, TrainsetError) else f"{p.package}:{p.path}: {type(err).__name__}: {err}"
            report.failures.append(msg)
            bar.write(f"error: {msg}")
        bar.update(1)

    if jobs <= 1:
        for p in todo:
            try:
                work(p)
                done(p, None)
            except (TrainsetError, OSError, ValueError, RuntimeError) as e:
                done(p, e)
        return
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        futures = [(p, ex.submit(work, p)) for p in todo]
        for p, f in futures:
            err = f.exception()
            if err is not None and not isinstance(err, (TrainsetError, OSError, ValueError, RuntimeError)):
                raise err
            done(p, err)


# ----------------------------------------------------------------------------------------------
# pack

def _read_credits_tsv(src: Path) -> dict[str, dict[str, str]]:
    path = src / "CREDITS.tsv"
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    out: dict[str, dict[str, str]] = {}
    for ln in lines[1:]:
        c = ln.split("\t")
        row = dict(zip(head, c + [""] * (len(head) - len(c))))
        out[row.get("file", "")] = row
    return out


def _tiles(w: int, h: int, crop: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Non-overlapping crop×crop tiles on a randomly shifted grid (one clipped tile if the photo is smaller)."""
    cw, ch = min(crop, w), min(crop, h)
    nx, ny = w // cw, h // ch
    ox, oy = rng.randint(0, w - nx * cw), rng.randint(0, h - ny * ch)
    tiles = [(ox + i * cw, oy + j * ch, cw, ch) for j in range(ny) for i in range(nx)]
    rng.shuffle(tiles)
    return tiles


def pack_subset(
    src_dir: PathLike,
    out_dir: PathLike,
    max_mb: float = 60,
    crop: int = 480,
    quality: int = 95,
    seed: int = 0,
    subsampling: int = 0,
    progress: bool = True,
) -> PackReport:
    """Write seeded random ``crop``×``crop`` JPEG crops of the PNGs in ``src_dir`` to ``out_dir``.

    Photos are visited in a seeded random order, round-robin (one new tile per photo per round),
    so the subset spreads over all photos; it stops before ``max_mb`` (10^6 bytes, including
    ``manifest.tsv`` and the credits) would be exceeded.  Tiles never overlap within a photo.
    ``subsampling=0`` keeps full chroma (4:4:4).  ``out_dir`` must be empty or an earlier pack
    (its files listed in ``manifest.tsv`` are replaced).  Photos smaller than ``crop`` give one
    clipped tile.
    """
    src, out = Path(src_dir), Path(out_dir)
    if crop < 16:
        raise ValueError(f"crop must be at least 16, got {crop}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    files = sorted(p for p in src.glob("*.png") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no PNG photos in {src}")
    budget = int(max_mb * 1_000_000)
    if out.exists():
        old_manifest = out / "manifest.tsv"
        existing = [p for p in out.iterdir()]
        if existing and not old_manifest.is_file():
            raise TrainsetError(f"{out} is not empty and holds no manifest.tsv from an earlier pack")
        if old_manifest.is_file():
            for ln in old_manifest.read_text(encoding="utf-8").splitlines()[1:]:
                name = ln.split("\t", 1)[0]
                if name and "/" not in name and (out / name).is_file():
                    (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)

    credits = _read_credits_tsv(src)
    rng = random.Random(seed)
    order = list(files)
    rng.shuffle(order)
    plans: list[tuple[Path, list[tuple[int, int, int, int]]]] = []
    for f in order:
        with Image.open(f) as im:
            w, h = im.size
        plans.append((f, _tiles(w, h, crop, random.Random(f"{seed}:{f.name}"))))
    n_rounds = max(len(t) for _, t in plans)

    # Budget for text files (manifest rows are ~200 bytes each; credits copied as-is).
    text_reserve = sum((src / n).stat().st_size for n in ("CREDITS.md", "CREDITS.tsv") if (src / n).is_file())
    bar = _progress(len(files), progress)
    # Encode image by image (each decoded once), then select round-robin within the budget.
    encoded: dict[Path, list[bytes]] = {}
    try:
        for f, tiles in plans:
            with Image.open(f) as im:
                im = im.convert("RGB")
                blobs = []
                spent_floor = 0
                for (x, y, w, h) in tiles:
                    buf = io.BytesIO()
                    im.crop((x, y, x + w, y + h)).save(buf, format="JPEG", quality=quality,
                                                      subsampling=subsampling, optimize=True)
                    blobs.append(buf.getvalue())
                    spent_floor += len(blobs[-1])
                    # this photo alone fills the budget after this many rounds: later tiles can't fit
                    if spent_floor > budget:
                        break
                encoded[f] = blobs
            bar.update(1)
    finally:
        bar.close()

    header = "file\tsource\tx\ty\twidth\theight\tpackage\tpath\tlicence"
    rows = [header]
    selected: list[tuple[str, bytes]] = []
    used = text_reserve + len(header.encode()) + 1
    full = False
    for r in range(n_rounds):
        for f, tiles in plans:
            if r >= len(tiles):
                continue
            if r >= len(encoded[f]):
                full = True
                break
            blob = encoded[f][r]
            x, y, w, h = tiles[r]
            name = f"{f.stem}__{x}_{y}.jpg"
            c = credits.get(f.name, {})
            row = "\t".join(_clean(str(v)) for v in (
                name, f.name, x, y, w, h, c.get("package", ""), c.get("path", ""), c.get("licence", "")))
            cost = len(blob) + len(row.encode("utf-8")) + 1
            if used + cost > budget:
                full = True
                break
            selected.append((name, blob))
            rows.append(row)
            used += cost
        if full:
            break

    total = 0
    for name, blob in selected:
        (out / name).write_bytes(blob)
        total += len(blob)
    (out / "manifest.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    total += (out / "manifest.tsv").stat().st_size
    for n in ("CREDITS.md", "CREDITS.tsv"):
        if (src / n).is_file():
            shutil.copyfile(src / n, out / n)
            total += (out / n).stat().st_size
    images = len({row.split("\t")[1] for row in rows[1:]})
    return PackReport(out_dir=out, crops=len(selected), images=images, bytes=total, complete=not full)
