"""The demo app (app.py) started once per test session in a subprocess, for the API and browser tests.

Weights: randomly initialised models for all nine zoo names, written once into a temporary folder
(reused across sessions while the specs are unchanged), so that the tests never depend on which
trained weights exist. Examples: two tiny images in a temporary folder (``HIIF_DEMO_EXAMPLES``).
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 300  # seconds: nine models load on a busy two-core machine


def test_weights_dir() -> Path:
    """Random-init safetensors for every zoo model (fixed seed), cached under the temp dir."""
    sys.path.insert(0, str(ROOT))
    import torch

    import hiif
    from hiif.weights import ZOO

    digest = hashlib.sha1(json.dumps(ZOO, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"hiif-test-weights-{digest}"
    if all((target / f"{n}.safetensors").is_file() for n in ZOO):
        return target
    work = Path(tempfile.mkdtemp(prefix="hiif-test-weights-tmp-"))
    torch.manual_seed(0)
    for name, spec in ZOO.items():
        hiif.save_safetensors(hiif.load_model(spec), work / f"{name}.safetensors",
                              {"steps": "0", "note": "random initialisation for tests"})
    try:
        work.rename(target)
    except OSError:  # another session made it meanwhile
        shutil.rmtree(work, ignore_errors=True)
    return target


def tiny_examples(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:24, 0:32]
    smooth = np.stack([x * 8, y * 10, (x + y) * 4], axis=-1).astype(np.uint8)
    Image.fromarray(smooth).save(folder / "a_gradient.png")
    Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8)).save(folder / "b_noise.png")
    return folder


def _die_with_parent() -> None:
    """Linux: the app gets SIGTERM when pytest dies, even by SIGKILL (no orphaned servers)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hiif-app-test-"))
        self.weights = test_weights_dir()
        self.examples = tiny_examples(self.tmp / "examples")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.tmp / "app.log"
        env = dict(os.environ, HIIF_WEIGHTS_DIR=str(self.weights), HIIF_DEMO_EXAMPLES=str(self.examples),
                   HIIF_DEMO_CHUNK="4096", GRADIO_SERVER_NAME="127.0.0.1",
                   GRADIO_SERVER_PORT=str(self.port), GRADIO_ANALYTICS_ENABLED="False",
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("HIIF_TEST_APP_THREADS", "1"))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200 and "Running on local URL" in self.log_path.read_text():
                        return
            except OSError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"app.py did not start within {STARTUP_TIMEOUT}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=15)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_SERVER: AppServer | None = None


def shared_server() -> AppServer:
    """One app per test session, shared by the API and browser test modules; stopped at exit."""
    global _SERVER
    if _SERVER is None or not _SERVER.alive():
        _SERVER = AppServer()
        atexit.register(_SERVER.stop)
    return _SERVER
