"""Training: the official recipe of each method plus a budgeted schedule for short CPU runs.

A run lives in ``runs/<name>/``: ``checkpoint.pt`` (model, optimizer, weight average, step, every
RNG) written every few minutes and at the end, ``log.tsv`` (step, loss, train PSNR, lr, seconds).
``--resume`` continues exactly where the checkpoint stopped; without a checkpoint it starts from the
committed weights (``weights/<name>.safetensors``) when they exist. ``export`` writes fp16
safetensors: of the exponential moving average of the weights when the config sets ``ema`` (short
CPU runs stop at a high learning rate, where the average of the last ~1/(1-ema) steps is a better
model than the last step's weights at no training cost).
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
import types
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .data.patches import PatchSampler, list_images, load_images
from .engine import effective_precision
from .imageio import atomic_write
from .models import ImplicitSR, create_model
from .weights import WEIGHTS_DIR, load_safetensors, save_safetensors

CHECKPOINT = "checkpoint.pt"


@dataclass
class Config:
    name: str
    model: dict[str, Any]
    data: dict[str, Any]
    optim: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a YAML config; ``base: other.yaml`` (relative to this file) starts from that config
        and overrides it key by key (nested mappings merged, anything else replaced)."""
        raw = _read_config(Path(path), seen=())
        for key in ("name", "model", "data", "optim"):
            if key not in raw:
                raise ValueError(f"{path}: config lacks '{key}'")
        return cls(raw["name"], raw["model"], raw["data"], raw["optim"], raw)


def _read_config(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        raise ValueError(f"{path}: config bases form a cycle")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config is a mapping")
    base = raw.pop("base", None)
    if base is None:
        return raw
    return _merged(_read_config(path.parent / base, (*seen, path.resolve())), raw)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        both_maps = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both_maps else value
    return out


def learning_rate(step: int, optim: dict[str, Any]) -> float:
    """Linear warm-up, then cosine to ``min_lr`` at ``horizon`` (default ``steps``), or the official
    step decay (``schedule: multistep`` with ``milestones`` and ``gamma``).

    ``anneal_from`` (cosine only) cuts a long schedule short: from that step, a second cosine takes
    the learning rate reached there down to ``min_lr`` at ``steps``. It is how a budget that turned
    out smaller than ``horizon`` still ends annealed, without a jump in the learning rate.
    ``restart_at`` (with ``restart_lr``) adds a further cycle once that one is done: the first
    ends at ``restart_at`` instead of ``steps``, then a cosine from ``restart_lr`` to ``min_lr``
    at ``steps`` (a warm restart for more budget after a finished anneal)."""
    base, warmup, total = optim["lr"], optim.get("warmup", 0), optim["steps"]
    if step < warmup:
        return base * (step + 1) / warmup
    if optim.get("schedule", "cosine") == "multistep":
        return base * optim.get("gamma", 0.5) ** sum(step >= m for m in optim.get("milestones", []))
    min_lr = optim.get("min_lr", base * 0.01)

    def cosine(start_lr: float, t: float) -> float:
        return min_lr + 0.5 * (start_lr - min_lr) * (1 + math.cos(math.pi * min(1.0, t)))

    restart_at = optim.get("restart_at")
    if restart_at is not None and step >= restart_at:  # another cycle: restart_lr down to min_lr
        return cosine(optim["restart_lr"], (step - restart_at) / max(1, total - restart_at))
    end = total if restart_at is None else restart_at  # the first cycle's end
    horizon, anneal_from = optim.get("horizon", end), optim.get("anneal_from")
    if anneal_from is not None and step >= anneal_from:
        reached = cosine(base, (anneal_from - warmup) / max(1, horizon - warmup))
        return cosine(reached, (step - anneal_from) / max(1, end - anneal_from))
    return cosine(base, (step - warmup) / max(1, horizon - warmup))


def describe_schedule(optim: dict[str, Any], earlier: list[dict[str, Any]] | None = None) -> str:
    """One line for model cards, e.g. ``Adam 0.0004, cosine to 30000, annealed 8000→14000``.

    ``earlier``: the schedules of the cycles these weights continue, oldest first (weights metadata
    ``earlier_cycles``): they are described first, then this one as the further cycle it is."""
    if earlier and optim.get("restart_at") is not None:
        return (f"{describe_schedule(earlier[-1], earlier[:-1])}; further cycle at {optim['restart_at']} "
                f"from {optim['restart_lr']} to {optim.get('steps', '?')}")
    text = f"Adam {optim.get('lr', '?')}, {optim.get('schedule', 'cosine')}"
    if optim.get("schedule", "cosine") == "multistep":
        return f"{text} at {optim.get('milestones', [])}"
    text += f" to {optim.get('horizon', optim.get('steps', '?'))}"
    end = optim.get("restart_at", optim.get("steps", "?"))
    if optim.get("anneal_from") is not None:
        text += f", annealed {optim['anneal_from']}→{end}"
    if optim.get("restart_at") is not None:
        text += f", restarted at {end} from {optim['restart_lr']} to {optim.get('steps', '?')}"
    return text


def seconds_per_step(log: str | Path, until: int, since: int = 0) -> float:
    """Training seconds per step in a run's ``log.tsv`` over the second half of the steps logged
    after ``since`` up to ``until``: the first steps of a process also pay one-off set-up (CUDA
    kernels chosen, caches warmed)."""
    rows = [line.split("\t") for line in Path(log).read_text().splitlines()[1:] if line.strip()]
    seconds = {int(r[0]): float(r[4]) for r in rows if since < int(r[0]) <= until}
    if not seconds:
        raise ValueError(f"{log}: no logged step after {since} up to {until}")
    last = max(seconds)
    first = min((s for s in seconds if (since + last) // 2 <= s < last), default=None)
    if first is None:
        raise ValueError(f"{log}: calibrate longer: fewer than two logged steps after {since}")
    return (seconds[last] - seconds[first]) / (last - first)


def fitted_step_total(per_step: float, done: int, seconds_left: float, cap: int) -> int:
    """The step total (a multiple of 10, at most ``cap``) that ``seconds_left`` more seconds reach
    at ``per_step`` seconds a step from step ``done``: a time budget turned into a schedule that
    ends annealed instead of being cut short."""
    return max(done, min(cap, int(done + max(0.0, seconds_left) / per_step) // 10 * 10))


def write_fitted_config(base: str | Path, total: int, out: str | Path, start: int = 0,
                        restart_lr: float | None = None) -> Path:
    """A config that is ``base`` with a schedule ending, annealed, at step ``total``.

    From scratch (``start`` 0): one cosine to ``total`` (a warm-up of at most a fifth of it; no
    horizon, anneal or restart of a longer schedule). Continuing weights trained to step ``start``:
    a further cycle, from ``restart_lr`` (default half the base learning rate) at ``start`` down to
    ``min_lr`` at ``total``, after a warm-up for the fresh optimizer (at most a fifth of the cycle),
    and the config reads the weights (``resume_from_weights``)."""
    base = Path(base).resolve()
    optim = Config.load(base).optim
    if start:
        cycle = {"steps": total, "restart_at": start, "restart_lr": restart_lr or optim["lr"] / 2,
                 "warmup": min(optim.get("warmup", 0), (total - start) // 5)}
        raw = {"base": str(base), "optim": cycle, "resume_from_weights": True}
    else:
        raw = {"base": str(base), "optim": {"steps": total, "warmup": min(optim.get("warmup", 0), total // 5),
                                            "horizon": total, "anneal_from": None, "restart_at": None}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(raw))
    return out


def psnr_from_mse(mse: float) -> float:
    """Training PSNR: ``mse`` is taken in the normalised space [-1, 1] (range 2)."""
    return -10 * math.log10(max(mse / 4, 1e-12))


def training_loss(model: ImplicitSR, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    pred = model.query_points(model.encode(batch["lr"]), batch["coord"], batch["cell"])
    pred = pred.float()
    return torch.nn.functional.l1_loss(pred, batch["gt"]), torch.mean((pred.detach() - batch["gt"]) ** 2)


class WeightAverage:
    """Exponential moving average of a model's floating-point state (float32 copies).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates (n counted
    from the start or reset of the average), so a fresh average is not dominated by its start.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be between 0 and 1, got {decay}")
        self.decay = decay
        self.reset(model)

    def _tracked(self, model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
        return [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]

    def reset(self, model: torch.nn.Module) -> None:
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in self._tracked(model)}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = [v.detach().float() for _, v in self._tracked(model)]
        torch._foreach_lerp_(list(self.shadow.values()), current, 1 - decay)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"weight average does not match the model: {sorted(missing)[:3]}")
        self.shadow = {k: state[k].float().to(self.shadow[k].device) for k in self.shadow}
        self.updates = updates

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module):
        """The model holds the averaged weights inside the block, its own outside."""
        own = {k: v.detach().clone() for k, v in self._tracked(model)}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield model
        finally:
            model.load_state_dict(own, strict=False)


INIT_PARTS = ("decoder", "encoder", "all")


def check_init_parts(parts: str) -> str:
    if parts not in INIT_PARTS:
        raise ValueError(f"init parts must be decoder, encoder or all, not {parts!r}")
    return parts


def warm_start(model: torch.nn.Module, source: str | Path, parts: str = "decoder") -> tuple[str, dict[str, Any]]:
    """Copy into ``model`` the tensors of ``parts`` (``decoder``, ``encoder`` or ``all``) whose names
    and shapes match in another model's weights (zoo name or file); returns what was copied and the
    donor's record (its training steps and seconds, for the model card's account of compute).

    Config ``init: {from: hiif-edsr, parts: decoder}`` starts, e.g., HIIF-RDN with the decoder that
    HIIF-EDSR learnt on the same 64-channel features, so only the new encoder starts from scratch."""
    from .weights import load_model

    check_init_parts(parts)
    donor = load_model(str(source), "cpu")
    if parts != "encoder" and donor.method != model.method:
        # same names can mean other things in another method (LTE's and HIIF's `freq`)
        raise ValueError(f"init: {source} holds a {donor.method} model; a {parts} warm start needs "
                         "the same method")
    theirs = donor.state_dict()
    wanted = lambda key: parts == "all" or key.startswith("encoder.") == (parts == "encoder")  # noqa: E731
    own = {k: v for k, v in model.state_dict().items() if wanted(k)}
    copied = [k for k, v in own.items() if k in theirs and theirs[k].shape == v.shape]
    other_shape = [k for k in own if k in theirs and k not in copied]
    if not copied:
        raise ValueError(f"init: {source} has no {parts} tensor of the same name and shape")
    with torch.no_grad():
        for key in copied:
            own[key].copy_(theirs[key])
    note = f"{parts} from {Path(str(source)).name}: {len(copied)} of {len(own)} tensors copied"
    if other_shape:
        note += f"; other shape, left as initialised: {', '.join(other_shape)}"
    meta = donor.metadata
    record = {"from": str(source), "parts": parts, "name": meta.get("name"),
              "steps": int(meta["steps"]) if "steps" in meta else None,
              "train_seconds": float(meta["train_seconds"]) if "train_seconds" in meta else None,
              "donors": json.loads(meta.get("donors", "[]"))}
    return note, record


def init_sources(init: dict | list | None) -> list[dict]:
    """Config ``init``: one ``{from, parts}`` or a list of them, applied in order (e.g. a trained
    RDN encoder from one model and the decoder from the same method's EDSR model); checked, with
    ``parts`` filled in (default ``decoder``)."""
    sources = [] if not init else [init] if isinstance(init, dict) else list(init)
    for source in sources:
        if not isinstance(source, dict) or "from" not in source:
            raise ValueError(f"init entries need `from` (zoo name or file), got {source!r}")
    return [{"from": s["from"], "parts": check_init_parts(s.get("parts", "decoder"))} for s in sources]


def check_freeze(freeze: str | None) -> str | None:
    if freeze not in (None, "encoder"):
        raise ValueError(f"freeze may only be encoder, not {freeze!r}")
    return freeze


def describe_init(init: dict | list | None, donors: list[dict[str, Any]] | None = None) -> str:
    """Model-card words for a config's ``init``, e.g. ``encoder from runs/rdn-encoder.safetensors
    (rdn-encoder: 3000 steps, 2.90 h), decoder from hiif-edsr (…)`` — with the donors' own training
    (``donors``, the export's record) when known, since a warm start's compute is part of the model's."""
    words = []
    for source in donors or init_sources(init):  # a record says what was really loaded
        text = f"{source['parts']} from {source['from']}"
        if source.get("steps") is not None:
            hours = (source.get("train_seconds") or 0) / 3600
            text += f" ({source.get('name') or '?'}: {source['steps']} steps, {hours:.2f} h)"
        words.append(text)
    return ", ".join(words)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    A training step allocates and frees tensors of tens of MB; glibc serves each from a fresh
    mmap, so every step pays page faults to touch them again. Serving them from the heap instead
    made a float32 RDN step of the recipe (batch 4) 7.26 -> 5.84 s on a 2-core Xeon
    (benchmarks/RESULTS.md section 22), for the same peak memory. For training processes only:
    the engine's memory guard reads what the kernel has available, and this keeps the peak
    booked. Returns whether it applied (glibc; musl's mallopt does nothing and says so)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError, TypeError):  # no mallopt (macOS), no CDLL(None) (Windows)
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


@contextlib.contextmanager
def _stops_noticed():
    """Count how often the process is continued after a stop (SIGCONT), so that time spent stopped
    (``kill -STOP`` to measure something beside a run) is not booked as training time."""
    counter = types.SimpleNamespace(count=0)
    if not hasattr(signal, "SIGCONT") or threading.current_thread() is not threading.main_thread():
        yield counter
        return

    def continued(signum, frame):
        counter.count += 1

    previous = signal.signal(signal.SIGCONT, continued)
    try:
        yield counter
    finally:
        signal.signal(signal.SIGCONT, previous)


class Trainer:
    def __init__(self, config: Config, run_dir: str | Path | None = None, device: str | None = None,
                 data_dir: str | Path | None = None, images: list[np.ndarray] | None = None,
                 progress: bool = True):
        self.cfg = config
        self.run_dir = Path(run_dir or Path("runs") / config.name)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.progress = progress
        # what really runs: bf16 only where the CPU has it natively (decided once, not per step)
        self.precision = effective_precision(config.raw.get("precision", "bf16"), self.device)
        self.seed = seed = int(config.raw.get("seed", 0))
        torch.manual_seed(seed)
        random.seed(seed)
        self.model = create_model(config.model).to(self.device)
        # NHWC convolutions (config ``channels_last``): oneDNN's preferred layout on CPU
        self.memory_format = torch.channels_last if config.raw.get("channels_last") else torch.contiguous_format
        if self.memory_format is torch.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # a fresh run's starting point (config ``init``) is applied by start(), only when no
        # checkpoint or weights are resumed: a resumed run never needs its donors again
        self.init = init_sources(config.raw.get("init"))
        self.start_note = "starting from scratch"
        self.started = False
        self.donors: list[dict[str, Any]] = []  # what the warm starts came from (warm_start records)
        self.hardware: list[str] = []  # every device this run trained on, in order (the export says)
        self.model.spec = config.model
        # config ``freeze: encoder``: the encoder gets no gradients and no optimizer state, so a
        # step costs its forward pass only (methods sharing one trained encoder, issue 5)
        self.frozen = check_freeze(config.raw.get("freeze"))
        if self.frozen == "encoder":
            self.model.encoder.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # fused Adam: one kernel for all parameters (22M parameters, an RDN model's, on the 2-core
        # AVX2 CPU: 0.18 instead of 0.57 s a step)
        self.optimizer = torch.optim.Adam(trainable, lr=config.optim["lr"],
                                          fused=self.device.type in ("cpu", "cuda"))
        if self.device.type == "cuda":  # fixed patch shapes: let cuDNN pick its fastest kernels once
            torch.backends.cudnn.benchmark = True
        self.train_mode()
        d = config.data
        if images is None:
            folder = data_dir or d.get("train_dir", "data/trainset")
            images = load_images(list_images(folder), d.get("patch", 48), progress)
        self.sampler = PatchSampler(images, d.get("patch", 48), d.get("scale_min", 1.0),
                                    d.get("scale_max", 4.0), d.get("queries", 2304),
                                    d.get("augment", True), seed)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions
        self.ema_decay = config.raw.get("ema")
        self.ema: WeightAverage | None = WeightAverage(self.model, float(self.ema_decay)) \
            if self.ema_decay else None
        self.warm_restart: int | None = None  # step at which a fresh optimizer took over
        # the schedules of the finished cycles that this run continues (committed weights of another
        # recipe), oldest first: the model card describes the whole history, not only the last cycle
        self.earlier_cycles: list[dict[str, Any]] = []
        self.data_name = str(d.get("name", data_dir or d.get("train_dir", "data/trainset")))

    def train_mode(self) -> None:
        """Training mode, except a frozen encoder: it serves the features it will serve at test
        time (SwinIR's stochastic depth off)."""
        self.model.train()
        if self.frozen == "encoder":
            self.model.encoder.eval()

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "step": self.step, "elapsed": self.elapsed, "spec": json.dumps(self.cfg.model),
            "sampler": json.dumps(self.sampler.state_dict()["rng"]),
            "torch_rng": torch.get_rng_state(), "python_rng": json.dumps(random.getstate()),
            "donors": json.dumps(self.donors), "hardware": json.dumps(self.hardware),
            # a resume inside a warm restart's warm-up goes on with the ramp, not at full rate
            "warm_restart": -1 if self.warm_restart is None else self.warm_restart,
            "earlier_cycles": json.dumps(self.earlier_cycles),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        if self.ema is not None:
            state["ema"], state["ema_updates"] = self.ema.state_dict(), self.ema.updates
        path = self.run_dir / CHECKPOINT
        with atomic_write(path) as fh:  # a kill mid-save leaves the previous checkpoint whole
            torch.save(state, fh)
        return path

    def read_checkpoint(self, path: str | Path | None = None) -> dict[str, Any]:
        return torch.load(path or self.run_dir / CHECKPOINT, map_location=self.device, weights_only=True)

    def load_checkpoint(self, path: str | Path | None = None, state: dict[str, Any] | None = None) -> None:
        state = state if state is not None else self.read_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.started, self.start_note = True, f"checkpoint at step {self.step}"
        self.donors = json.loads(state.get("donors", "[]"))
        self.hardware = json.loads(state.get("hardware", "[]"))
        restart = int(state.get("warm_restart", -1))
        self.warm_restart = None if restart < 0 else restart
        self.earlier_cycles = json.loads(state.get("earlier_cycles", "[]"))
        self.sampler.load_state_dict({"rng": json.loads(state["sampler"])})
        torch.set_rng_state(state["torch_rng"].cpu())
        py = json.loads(state["python_rng"])
        random.setstate((py[0], tuple(py[1]), py[2]))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"], int(state["ema_updates"]))
            else:  # a checkpoint from before the average was kept: it starts here
                self.ema.reset(self.model)

    def start(self) -> str:
        """Set a fresh run's starting point once (the warm starts of config ``init``, else the
        random initialisation) and say what it is; a no-op after resume() loaded a state."""
        if not self.started:
            starts = [warm_start(self.model, s["from"], s["parts"]) for s in self.init]
            notes, self.donors = [n for n, _ in starts], [r for _, r in starts]
            if notes:
                self.start_note += ", " + "; ".join(notes)
                if self.ema is not None:
                    self.ema.reset(self.model)
            self.started = True
        return self.start_note

    def resume(self) -> str:
        """Continue from the run's checkpoint, else from the committed weights, else from scratch.
        Committed weights trained further than the checkpoint (on another machine, say) win.
        Config ``resume_from_weights: false`` leaves the committed weights out: a run of another
        recipe under the same name (configs/gpu/) continues only its own checkpoint."""
        committed = WEIGHTS_DIR / f"{self.cfg.name}.safetensors"
        use_weights = self.cfg.raw.get("resume_from_weights", True) and committed.is_file()
        weights = load_safetensors(committed) if use_weights else None
        weight_steps = int(weights.metadata.get("steps", 0)) if weights is not None else -1
        note = "no checkpoint; "
        if (self.run_dir / CHECKPOINT).is_file():
            state = self.read_checkpoint()
            if int(state["step"]) >= weight_steps:
                self.load_checkpoint(state=state)
                return f"resumed {self.run_dir / CHECKPOINT} at step {self.step}"
            note = f"checkpoint (step {state['step']}) is behind the weights; "
        if weights is not None:
            self.model.load_state_dict(weights.state_dict())
            if self.ema is not None:
                self.ema.reset(self.model)
            self.step = int(weights.metadata.get("steps", 0))
            self.elapsed = float(weights.metadata.get("train_seconds", 0))
            # the optimizer moments are lost: restart the warm-up from there
            self.warm_restart = self.step
            # fresh patches: the seed's own stream is the one the weights were trained on first
            self.sampler.reseed(self.seed, self.step)
            self.started, self.start_note = True, f"{committed} at step {self.step}"
            self.donors = json.loads(weights.metadata.get("donors", "[]"))
            self.hardware = [h for h in weights.metadata.get("device", "").split(" + ") if h]
            self.earlier_cycles = json.loads(weights.metadata.get("earlier_cycles", "[]"))
            trained_by = json.loads(weights.metadata.get("recipe", "{}")).get("optim")
            if trained_by and trained_by != self.cfg.optim:  # a further cycle of another schedule
                self.earlier_cycles.append(trained_by)
            return f"{note}started from {committed} (step {self.step}, fresh optimizer)"
        return f"no checkpoint or weights; {self.start()}"

    # -- training ----------------------------------------------------------------------------
    def autocast(self):
        precision = self.precision
        if precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def train(self, steps: int | None = None, max_minutes: float | None = None,
              checkpoint_minutes: float | None = None) -> dict[str, float]:
        self.start()
        here = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        if here not in self.hardware:
            self.hardware.append(here)
        optim = self.cfg.optim
        target = optim["steps"] if steps is None else min(optim["steps"], self.step + max(0, steps))
        checkpoint_every = 60 * (checkpoint_minutes or self.cfg.raw.get("checkpoint_minutes", 10))
        deadline = time.time() + 60 * max_minutes if max_minutes else None
        batch_size = optim["batch"]
        accumulate = int(optim.get("accumulate", 1))
        warm_restart = self.warm_restart
        log = (self.run_dir / "log.tsv")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not log.exists():
            log.write_text("step\tloss\ttrain_psnr\tlr\tseconds\n")
        from tqdm import tqdm
        bar = tqdm(total=target, initial=self.step, desc=self.cfg.name, unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        with log.open("a") as log_file:
            try:
                self._loop(target, optim, batch_size, accumulate, warm_restart, checkpoint_every,
                           deadline, bar, log_file)
            except KeyboardInterrupt:  # Ctrl-C / SIGTERM: keep what was learnt, then stop
                bar.close()
                self.save_checkpoint()
                raise
        bar.close()
        self.save_checkpoint()
        return {"step": self.step, "loss": self._smooth_loss or float("nan"),
                "train_psnr": self._smooth_psnr or float("nan")}

    def _loop(self, target: int, optim: dict[str, Any], batch_size: int, accumulate: int,
              warm_restart: int | None, checkpoint_every: float, deadline: float | None,
              bar: Any, log_file: Any) -> None:
        last_save = time.time()
        self._smooth_loss = self._smooth_psnr = None
        last_step_seconds = None
        with _stops_noticed() as stops:
            while self.step < target:
                stopped_before = stops.count
                t0 = time.time()
                lr, loss, psnr = self._step(optim, batch_size, accumulate, warm_restart)
                seconds = time.time() - t0
                if stops.count != stopped_before and last_step_seconds is not None:
                    # the process was stopped (SIGSTOP ... SIGCONT) during this step: count the
                    # step as long as the one before, so train time stays training time
                    seconds = last_step_seconds
                last_step_seconds = seconds
                self.elapsed += seconds
                self._report(bar, log_file, lr, loss, psnr)
                if time.time() - last_save > checkpoint_every:
                    self.save_checkpoint()
                    last_save = time.time()
                if deadline and time.time() > deadline:
                    break

    def _step(self, optim: dict[str, Any], batch_size: int, accumulate: int,
              warm_restart: int | None) -> tuple[float, float, float]:
        """One optimizer step; returns its learning rate, loss and training PSNR."""
        lr = learning_rate(self.step, optim)
        if warm_restart is not None and self.step - warm_restart < optim.get("warmup", 0):
            lr *= (self.step - warm_restart + 1) / optim["warmup"]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, mse_sum = 0.0, 0.0
        for _ in range(accumulate):
            batch = {k: v.to(self.device, non_blocking=True)
                     for k, v in self.sampler.sample(batch_size // accumulate).items()}
            if self.memory_format is torch.channels_last:
                batch["lr"] = batch["lr"].contiguous(memory_format=torch.channels_last)
            with self.autocast():
                loss, mse = training_loss(self.model, batch)
            (loss / accumulate).backward()
            loss_sum += loss.item() / accumulate
            mse_sum += mse.item() / accumulate
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        return lr, loss_sum, psnr_from_mse(mse_sum)

    def _report(self, bar: Any, log_file: Any, lr: float, loss: float, psnr: float) -> None:
        smooth = lambda old, new: new if old is None else 0.98 * old + 0.02 * new  # noqa: E731
        self._smooth_loss, self._smooth_psnr = smooth(self._smooth_loss, loss), smooth(self._smooth_psnr, psnr)
        bar.update(1)
        bar.set_postfix(loss=f"{self._smooth_loss:.4f}", psnr=f"{self._smooth_psnr:.2f}", lr=f"{lr:.2e}")
        if self.step % 10 == 0:
            log_file.write(f"{self.step}\t{loss:.5f}\t{psnr:.3f}\t{lr:.3e}\t{self.elapsed:.1f}\n")
            log_file.flush()

    def export(self, path: str | Path | None = None, average: bool = True) -> Path:
        """fp16 safetensors of the weight average (config ``ema``), or of the last step's weights
        when ``average`` is False or no average is kept."""
        path = Path(path or WEIGHTS_DIR / f"{self.cfg.name}.safetensors")
        ema = self.ema if average else None
        meta = {
            "name": self.cfg.name, "steps": str(self.step), "train_seconds": f"{self.elapsed:.0f}",
            "batch": str(self.cfg.optim["batch"]), "data": self.data_name,
            # where it trained (not where it is exported: `hiif export` runs on the CPU)
            "device": " + ".join(self.hardware) or "cpu",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "recipe": json.dumps({"optim": self.cfg.optim, "data": self.cfg.data,
                                  "precision": self.precision,
                                  "init": self.cfg.raw.get("init"),
                                  "freeze": self.frozen}),
        }
        if ema is not None:
            meta["ema"] = f"{ema.decay:g} over {ema.updates} steps"
        if self.donors:
            meta["donors"] = json.dumps(self.donors)
        if self.earlier_cycles:
            meta["earlier_cycles"] = json.dumps(self.earlier_cycles)
        self.model.eval()
        with ema.swapped_in(self.model) if ema is not None else contextlib.nullcontext():
            out = save_safetensors(self.model, path, meta, spec=self.cfg.model)
        self.train_mode()
        return out
