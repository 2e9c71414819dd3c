"""Command line: ``python -m hiif {upscale,zoom,compare,sweep,models,train,export,evaluate}``.

User errors (bad files, bad scales, unknown models) print one line on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing problem: printed as one line, exit code 2."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: a plain decimal number: no ``_`` separators, ``inf``/``nan``, signs or non-ASCII digits
_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _numbers(text: str, option: str, expected: str) -> list[float]:
    """Comma-separated plain numbers; empty items (``2,``) are refused, not skipped."""
    if not isinstance(text, str):  # argparse turns the value ``--`` (``--scale=--``) into []
        raise CliError(f"{option}: expected {expected}, got '--'")
    parts = text.split(",")
    if not all(_NUMBER.fullmatch(part.strip()) for part in parts):
        raise CliError(f"{option}: expected {expected}, got {text!r}")
    return [float(part) for part in parts]


def parse_scale(text: str, option: str = "--scale") -> tuple[float, float]:
    """``--scale``: ``S`` or ``SY,SX``, each checked by :func:`hiif.engine.validate_scale`."""
    from .engine import validate_scale

    expected = "a number or SY,SX (1 to 30)"
    values = _numbers(text, option, expected)
    if len(values) > 2:
        raise CliError(f"{option}: expected {expected}, got {text!r}")
    try:
        return validate_scale(values[0] if len(values) == 1 else tuple(values))
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def parse_scales(text: str) -> list[float]:
    """``--scales`` of ``evaluate``: comma-separated numbers, each in [1, 30]."""
    from .engine import validate_scale

    scales = _numbers(text, "--scales", "comma-separated numbers (1 to 30)")
    for s in scales:
        try:
            validate_scale(s)
        except ValueError as exc:
            raise CliError(f"--scales: {exc}") from None
    return scales


def _refuse_overwriting_input(output: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """A result written over its own input would destroy the picture it was made from."""
    out = Path(output)
    if not out.is_file():
        return
    for source in inputs:
        if Path(source).is_file() and os.path.samefile(source, out):
            raise CliError(f"{out}: this is the input image; write the result to another file")


def _upscale_pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output) paths: one file to a file or into a folder, or every image of a folder
    (not its subfolders) into a folder, as ``<stem>.<--format>``."""
    from .imageio import IMAGE_SUFFIXES

    source, target = Path(args.input), Path(args.output)
    if not source.is_dir():
        if target.is_dir():  # `upscale photo.jpg out/` writes out/photo.png
            target = target / f"{source.stem}.{args.format or 'png'}"
        elif args.format is not None:
            raise CliError("--format: only for an output folder; a file's extension gives its format")
        _refuse_overwriting_input(target, source)
        return [(source, target)]
    if target.is_file() or (not target.exists() and target.suffix.lower() in IMAGE_SUFFIXES):
        raise CliError(f"{target}: an input folder needs an output folder, not a file")
    if not target.exists() and not target.parent.is_dir():
        raise CliError(f"{target.parent}: output folder does not exist")
    inputs = sorted(p for p in source.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
    if not inputs:
        raise CliError(f"{source}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
    if target.exists() and target.resolve() == source.resolve():
        raise CliError(f"{target}: the output folder is the input folder; name another one")
    written_by: dict[Path, Path] = {}
    for path in inputs:
        out = target / f"{path.stem}.{args.format or 'png'}"
        if out in written_by:
            raise CliError(f"{written_by[out].name} and {path.name} would both be written to {out}")
        written_by[out] = path
    return [(path, out) for out, path in written_by.items()]


def cmd_upscale(args: argparse.Namespace) -> int:
    from .engine import MIN_REQUESTED_TILE, effective_precision, resolve_device

    # Everything that can be checked is checked before the model loads (that takes seconds),
    # for every image of a folder: a batch does not stop half-way on a file it could have refused.
    sized = args.width is not None or args.height is not None
    if args.scale is None and not sized:
        raise CliError("give --scale S (or SY,SX), or the output's --width and/or --height in pixels")
    if args.scale is not None and sized:
        raise CliError("--scale and --width/--height: give one or the other")
    for option, value in (("--width", args.width), ("--height", args.height)):
        if value is not None and value < 1:
            raise CliError(f"{option}: expected a positive number of pixels, got {value}")
    scale = parse_scale(args.scale) if args.scale is not None else None  # None: from each image's size
    device = resolve_device(args.device)
    effective_precision(args.precision, device)  # fp16 on a CPU is refused here
    if args.chunk is not None and args.chunk < 1:
        raise CliError(f"--chunk: expected a positive number of queries, got {args.chunk}")
    if args.tile is not None and (args.tile < 0 or 0 < args.tile < MIN_REQUESTED_TILE):
        raise CliError(f"--tile: expected 0 (whole images only) or a tile size of at least "
                       f"{MIN_REQUESTED_TILE} pixels, got {args.tile}")
    pairs = _upscale_pairs(args)
    batch = Path(args.input).is_dir()
    made_folder = batch and not Path(args.output).exists()
    if batch:
        Path(args.output).mkdir(exist_ok=True)
    try:
        _upscale_all(args, pairs, batch, scale, device)
    finally:  # a batch refused (a bad image, an unknown model) leaves no empty folder behind
        if made_folder and not any(Path(args.output).iterdir()):
            Path(args.output).rmdir()
    return 0


def _upscale_all(args: argparse.Namespace, pairs: list[tuple[Path, Path]], batch: bool,
                 scale: tuple[float, float] | None, device: torch.device) -> None:
    """Check every (input, output) pair, then load the model once and upscale them in turn.
    ``scale`` None: each image's scale gives it the ``--width``/``--height`` asked for."""
    from tqdm import tqdm

    from .engine import MAX_OUTPUT_PIXELS, Upscaler, output_size, scale_for_size
    from .imageio import ImageError, check_output, load_image, save_image
    from .weights import load_model

    image = None
    formats, scales, refused = [], [], []
    checks = pairs if not batch or args.quiet else tqdm(pairs, desc="checking the inputs", leave=False,
                                                         unit="image")
    for source, target in checks:
        try:
            image = load_image(source)  # decoded whole: inputs are at most MAX_INPUT_PIXELS
            try:
                image_scale = scale or scale_for_size(image.size, args.width, args.height)
            except ValueError as exc:
                raise CliError(f"{source}: {exc}") from None
            height, width = output_size(image.size, image_scale)
            fmt = check_output(target, (height, width))
            if fmt != "PNG" and height * width > MAX_OUTPUT_PIXELS:
                raise CliError(f"{target}: a {width}×{height} output ({height * width / 1e6:.0f} MP) is above "
                               f"{MAX_OUTPUT_PIXELS / 1e6:.0f} MP, which only .png outputs (rendered in bands) allow")
            formats.append(fmt)
            scales.append(image_scale)
        except (ImageError, CliError) as exc:
            refused.append(str(exc))
    if refused:
        more = f" (and {len(refused) - 1} more of the {len(pairs)} images)" if len(refused) > 1 else ""
        raise CliError(refused[0] + more + ("; nothing was written" if batch else ""))
    model = "bicubic" if args.model == "bicubic" else load_model(args.model, device=device)
    upscaler = Upscaler(model, device=device, chunk=args.chunk, precision=args.precision, tile=args.tile)
    for k, ((source, target), fmt, image_scale) in enumerate(zip(pairs, formats, scales), 1):
        try:
            if batch:
                image = load_image(source)  # one image in memory at a time
                if not args.quiet:
                    print(f"[{k}/{len(pairs)}] {source}", file=sys.stderr)
            height, width = output_size(image.size, image_scale)
            if fmt == "PNG":  # streamed in bands: bounded memory at any size
                upscaler.render_to_png(image, image_scale, target, progress=not args.quiet)
            else:
                save_image(upscaler.upscale(image, image_scale, progress=not args.quiet), target)
        except (ValueError, OSError, MemoryError) as exc:
            if not batch:
                raise
            message = one_line(exc)
            if str(source) not in message:
                message = f"{source}: {message}"
            raise CliError(f"{message} ({k - 1} of the {len(pairs)} images written)") from None
        if not args.quiet:
            print(f"{target}: {width}×{height} ({upscaler.describe()})", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    from . import demo
    from .imageio import check_output, check_writable, save_image

    scale = parse_scale(args.scale)
    center = _point(args.center)
    max_input = None
    if args.max_input_mp is not None:
        if not math.isfinite(args.max_input_mp) or args.max_input_mp <= 0:
            raise CliError(f"--max-input-mp: expected a positive number of megapixels, got {args.max_input_mp}")
        max_input = max(1, round(args.max_input_mp * 1e6))
    check_output(args.output)
    _refuse_overwriting_input(args.output, args.input)
    if args.crops is not None:
        check_writable(Path(args.crops) / "crop.png")
    bar = _FractionBar()
    try:
        comparison = demo.compare(args.input, scale, args.backbone, center=center, size=args.size,
                                  ground_truth=args.ground_truth, max_input_pixels=max_input, device=args.device,
                                  progress=None if args.quiet else bar)
    finally:
        bar.close()
    figure = comparison.figure()
    save_image(figure, args.output)
    if args.crops is not None:
        demo.save_results(comparison, Path(args.crops), figure=False)
    if not args.quiet:
        (top, left, rh, rw), (H, W) = comparison.job.region, comparison.job.out_hw
        print(f"{args.output}: {figure.width}×{figure.height} figure of the {rw}×{rh} region at "
              f"x {left}, y {top} of the {W}×{H} output", file=sys.stderr)
        for row in [demo.TABLE_HEADERS, *comparison.table()]:
            print("  ".join(f"{cell!s:<12}" for cell in row).rstrip(), file=sys.stderr)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from . import demo
    from .imageio import check_output, save_image

    scales = parse_scales(args.scales)
    center = _point(args.center)
    check_output(args.output)
    _refuse_overwriting_input(args.output, args.input)
    bar = _FractionBar()
    try:
        figure = demo.scale_sweep(args.input, scales, args.model, center=center, window=args.window,
                                  device=args.device, progress=None if args.quiet else bar)
    finally:
        bar.close()
    save_image(figure, args.output)
    if not args.quiet:
        print(f"{args.output}: {figure.width}×{figure.height} figure, {args.model} at "
              f"{', '.join(f'×{s:g}' for s in scales)}", file=sys.stderr)
    return 0


def cmd_zoom(args: argparse.Namespace) -> int:
    from .animation import ZOOM_FPS, check_animation_output, zoom

    (to, other) = parse_scale(args.to, "--to")
    if to != other:
        raise CliError(f"--to: a zoom has one scale for both axes, got {args.to!r}")
    center = _point(args.center)
    check_animation_output(args.output)
    _refuse_overwriting_input(args.output, args.input)
    if not ZOOM_FPS[0] <= args.fps <= ZOOM_FPS[1]:
        raise CliError(f"--fps: expected {ZOOM_FPS[0]} to {ZOOM_FPS[1]} frames a second, got {args.fps}")
    bar = _FractionBar()
    try:
        result = zoom(args.input, to, args.model, versus=args.versus, center=center, size=args.size,
                      frames=args.frames, device=args.device, progress=None if args.quiet else bar)
    finally:
        bar.close()
    result.save(args.output, fps=args.fps, bounce=args.bounce)
    if not args.quiet:
        first = result.frames[0]
        shown = len(result.frames) * 2 - 2 if args.bounce else len(result.frames)
        print(f"{args.output}: {shown} frames of {first.width}×{first.height} at {args.fps} fps, "
              f"×{result.scales[0]:.2f} to ×{result.scales[-1]:.2f}", file=sys.stderr)
    return 0


def _point(text: str | None) -> list[float] | None:
    """``--center X,Y`` (pixels of the input image), or None."""
    if text is None:
        return None
    expected = "X,Y (pixels of the input image)"
    values = _numbers(text, "--center", expected)
    if len(values) != 2:
        raise CliError(f"--center: expected {expected}, got {text!r}")
    return values


class _FractionBar:
    """A progress callback ``(fraction, text)`` drawing one tqdm bar on stderr, opened at the first
    report (so that errors found before any work print alone) and closed by :meth:`close`."""

    def __init__(self):
        self.bar = None

    def __call__(self, fraction: float, text: str) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=1000, desc=text, leave=False, bar_format="{desc} {bar} {percentage:3.0f}%")
        self.bar.set_description_str(text, refresh=False)
        self.bar.update(max(0, round(fraction * 1000) - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_models(args: argparse.Namespace) -> int:
    from .weights import zoo_status

    rows = zoo_status()
    print(f"{'name':<12} {'params':>12}  weights")
    for row in rows:
        print(f"{row['name']:<12} {row['params']:>12,}  {row['weights'] or 'not installed'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .engine import resolve_device
    from .train import Config, Trainer, keep_freed_memory

    if not Path(args.config).is_file():
        raise CliError(f"{args.config}: no such config file")
    resolve_device(args.device)  # one line for a device this machine lacks, before any set-up
    config = Config.load(args.config)
    import signal

    def stop(signum, frame):  # `kill` behaves like Ctrl-C: checkpoint, then exit
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    keep_freed_memory()  # fewer page faults a step (RESULTS section 22)
    trainer = Trainer(config, run_dir=args.run_dir, device=args.device, data_dir=args.data)
    print(trainer.resume() if args.resume else trainer.start(), file=sys.stderr)
    if trainer.precision != config.raw.get("precision", "bf16"):
        print(f"{config.name}: training in {trainer.precision}, not {config.raw.get('precision', 'bf16')}: "
              "this CPU has no native bf16 (emulated, it is many times slower)", file=sys.stderr)
    steps = args.steps
    if args.until is not None:  # equal-step rounds: bring every model to the same total
        steps = args.until - trainer.step
    if steps is not None and steps <= 0:  # still exported: a round's job that fell behind re-exports
        print(f"{config.name}: already at step {trainer.step}; nothing to train", file=sys.stderr)
    else:
        stats = trainer.train(steps=steps, max_minutes=args.max_minutes)
        print(f"{config.name}: step {stats['step']}, loss {stats['loss']:.4f}, "
              f"train PSNR {stats['train_psnr']:.2f} dB; checkpoint in {trainer.run_dir}", file=sys.stderr)
    if args.export is not None:
        print(f"exported {trainer.export(args.export or None)}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .train import Config, Trainer

    config = Config.load(args.config)
    trainer = Trainer(config, run_dir=args.run_dir, device="cpu", images=[_dummy_image()], progress=False)
    trainer.load_checkpoint()
    trainer.data_name = str(config.data.get("name", config.data.get("train_dir")))
    path = trainer.export(args.output, average=not args.last_step)
    print(f"exported {path} (step {trainer.step})", file=sys.stderr)
    return 0


def _dummy_image():
    import numpy as np
    return np.zeros((48, 48, 3), np.uint8)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .engine import resolve_device
    from .evaluate import run_cli

    scales = parse_scales(args.scales)  # the one parse; run_cli checks folders and output paths
    resolve_device(args.device)
    return run_cli(args, scales)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hiif", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upscale", help="upscale an image, or every image of a folder, by any scale up to 30")
    p.add_argument("input", help="an image file, or a folder: its images (not its subfolders')")
    p.add_argument("output", help="an image file (its extension gives the format), or a folder "
                                  "(created if need be): <input name>.png there")
    p.add_argument("--format", choices=["png", "jpg", "webp", "tif", "bmp"], default=None,
                   help="the outputs' format when OUTPUT is a folder (default: png)")
    p.add_argument("--scale", default=None, help="S, or SY,SX for per-axis scales (1 to 30)")
    p.add_argument("--width", type=int, default=None, metavar="PX",
                   help="instead of --scale: the output's width (with --height alone or both: its size; "
                        "one alone keeps the aspect ratio)")
    p.add_argument("--height", type=int, default=None, metavar="PX", help="instead of --scale: the output's height")
    p.add_argument("--model", default="hiif-edsr", help="zoo name, weights path, or 'bicubic'")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    p.add_argument("--chunk", type=int, default=None, help="queries per decoder call")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="encode in N×N tiles (exact for EDSR-baseline and RDN); 0: whole images only; "
                        "default: whole when it fits in memory, else tiles as large as fit")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("zoom", help="an animation zooming into one region, ×1 up to a scale (optionally beside "
                                    "another method)")
    p.add_argument("input")
    p.add_argument("output", help="the animation: .webp, .gif or .png (APNG)")
    p.add_argument("--to", default="8", help="the last frame's scale (up to 30; default 8)")
    p.add_argument("--model", default="hiif-edsr", help="zoo name, weights path, or 'bicubic'")
    p.add_argument("--versus", default=None, metavar="MODEL",
                   help="render the same zoom with this model beside it, on the left (e.g. bicubic, liif-edsr)")
    p.add_argument("--center", default=None, metavar="X,Y",
                   help="the point zoomed into, in pixels of the input (default: its middle)")
    p.add_argument("--size", type=int, default=256, metavar="N", help="each method's square, in output pixels "
                                                                       "(16 to 512; default 256)")
    p.add_argument("--frames", type=int, default=48, help="how many scales (2 to 240; default 48)")
    p.add_argument("--fps", type=int, default=12, help="frames a second (1 to 50; default 12)")
    p.add_argument("--bounce", action="store_true", help="play forwards then backwards: a loop without a jump")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_zoom)

    p = sub.add_parser("compare", help="a comparison figure: bicubic, LIIF, LTE and HIIF on one region")
    p.add_argument("input")
    p.add_argument("output", help="the figure (.png, .jpg, …)")
    p.add_argument("--scale", required=True, help="S, or SY,SX for per-axis scales (1 to 30)")
    p.add_argument("--backbone", choices=["edsr", "rdn", "swinir"], default="edsr")
    p.add_argument("--center", default=None, metavar="X,Y",
                   help="centre of the region, in pixels of the input image (default: its middle)")
    p.add_argument("--size", type=int, default=256, metavar="N",
                   help="the region: about N×N pixels of the output (default 256)")
    p.add_argument("--ground-truth", action="store_true",
                   help="treat the input as ground truth: downsample it by the scale (bicubic), "
                        "restore it, and score each method (PSNR on Y, SSIM) on the region")
    p.add_argument("--max-input-mp", type=float, default=None, metavar="MP",
                   help="encode only a part of this many megapixels around --center (fast for a small "
                        "region of a large photo; HIIF's statistics then cover that part's output)")
    p.add_argument("--crops", default=None, metavar="DIR", help="also save each method's region as a PNG here")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="a figure of one model on one window of the input at several scales")
    p.add_argument("input")
    p.add_argument("output", help="the figure (.png, .jpg, …)")
    p.add_argument("--scales", default="2,4,8,16,30", help="comma-separated scales (1 to 30; at most 12)")
    p.add_argument("--model", default="hiif-edsr", help="zoo name, weights path, or 'bicubic'")
    p.add_argument("--center", default=None, metavar="X,Y",
                   help="centre of the window, in pixels of the input image (default: its middle)")
    p.add_argument("--window", type=int, default=32, metavar="N",
                   help="the window: N×N pixels of the input (default 32)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("models", help="list the model zoo")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a model from a config")
    p.add_argument("--config", required=True)
    p.add_argument("--resume", action="store_true", help="continue from runs/<name>/checkpoint.pt "
                   "(or from the committed weights)")
    p.add_argument("--max-minutes", type=float, default=None)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="train at most this many more steps")
    budget.add_argument("--until", type=int, default=None, help="train until this total step count")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--data", default=None, help="training image folder (overrides the config)")
    p.add_argument("--device", default=None)
    p.add_argument("--export", nargs="?", const="", default=None, metavar="PATH",
                   help="at the end, write the weights to PATH (default weights/<name>.safetensors)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a run's checkpoint to fp16 safetensors")
    p.add_argument("--config", required=True)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--output", default=None)
    p.add_argument("--last-step", action="store_true",
                   help="export the last step's weights, not their moving average (config 'ema')")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="PSNR/SSIM on a benchmark folder, official protocol")
    p.add_argument("--model", action="append", required=True,
                   help="zoo name or weights path; repeat to compare models")
    p.add_argument("--data", required=True, help="folder(s) of HR images, comma-separated (Set5, Set14, DIV2K valid …)")
    p.add_argument("--scales", default="2,3,4,6,8,12,18,24,30")
    p.add_argument("--protocol", choices=["benchmark", "div2k"], default=None,
                   help="benchmark: Y channel, shave scale; div2k: RGB, shave scale+6 "
                        "(default: div2k when the folder name contains 'div2k')")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="write results as .json or .csv")
    p.add_argument("--plot", default=None,
                   help="write PSNR-vs-scale plots, the gain over bicubic below (.png, .pdf or .svg)")
    p.add_argument("--record", default=None, metavar="JSON",
                   help="fold the results into this record (weights/results.json); --card then covers it all")
    p.add_argument("--card", default=None, help="also write a model card (markdown), e.g. weights/MODELS.md")
    p.add_argument("--card-intro", default=None,
                   help="text placed at the top of the model card (default: what the card already has there)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, OSError, MemoryError, RuntimeError) as exc:
        from .engine import is_out_of_memory

        if isinstance(exc, RuntimeError) and not is_out_of_memory(exc):
            raise  # a bug, not a user's problem: keep its traceback
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
