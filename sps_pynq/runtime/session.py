"""`Session`: load a packed model once, run it on a backend (board, sim or rtl) many times.

    with Session("vgg16.spsmodel") as s:          # backend="auto": the board if an SPS overlay is there
        probs = s.run(x)                            # float (C,H,W) or (N,C,H,W) in, float (N, ...) out
        print(s.backend.name, s.chosen_backend_reason, s.stats()["seconds"])
        probs = await s.run_async(x)                # the same as a coroutine (PYNQ's convention; a notebook)

When the model carries input preprocessing (manifest "preprocess": scale, mean, std) run() applies it first,
x' = (x * scale - mean) / std per channel, so raw data goes in (e.g. uint8 pixels); `classes` names the first
output's classes. The input is then quantized with the program's input scale (rint, saturate), each sample runs
the whole layer program once, outputs are dequantized with their scales and the host steps (softmax) applied.

Async: run_async() is the coroutine, run() runs it to its end (driver.run_blocking: on this thread's loop, or on
a helper thread when a loop already runs here, as in a Jupyter cell). On the board the run awaits the core's
interrupt (or polls with asyncio.sleep over the network), so other tasks of the loop go on meanwhile; sim and rtl
run on a worker thread.

One Session may be shared between threads and tasks: its backend has one arena (one DDR buffer on the board), so
the session holds a lock from writing a sample's input to reading its outputs; runs from several threads or
tasks take turns. For runs in parallel, open one Session per thread (each has its own arena and backend state).
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import List, Optional, Sequence, Union

import numpy as np

from .. import model_file
from ..backends import BACKEND_NAMES, backend_class
from ..backends.stats import Stats
from ..errors import BackendError, HardwareMismatchError, InputError, ModelFileError
from ..hw.config import HwConfig, get_config
from ..program import Program, TensorInfo
from ..backends.aio import acquire, run_blocking
from .preprocess import apply_host_steps, apply_preprocess, dequantize, quantize

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto",) + BACKEND_NAMES


def choose_backend() -> "tuple[str, str]":
    """(backend name, why) for backend="auto": the board when its backend says an SPS overlay is usable."""
    try:
        from ..backends.board import board_available
    except Exception as e:        # the board module is optional (pynq missing, import error): sim it is
        return "sim", f"board backend unavailable ({type(e).__name__}: {e}); using sim (C golden model)"
    try:
        ok, reason = board_available()
    except Exception as e:
        ok, reason = False, f"board check failed ({type(e).__name__}: {e})"
    if ok:
        return "board", f"SPS overlay present: {reason}"
    return "sim", f"{reason}; using sim (C golden model)"


def _onnx_shape(program: Program, kind: str, t: TensorInfo) -> Optional[tuple]:
    """The tensor's ONNX shape without batch, if the compiler recorded one that matches its size."""
    shape = (program.metadata.get(f"onnx_{kind}") or {}).get(t.name)
    if not shape or len(shape) < 2:
        return None
    rest = tuple(int(v) for v in shape[1:])
    return rest if int(np.prod(rest)) == t.nbytes else None


class Session:
    def __init__(self, path_or_program: Union[str, os.PathLike, Program], backend: str = "auto",
                 hw: Union[str, HwConfig, None] = None, **backend_options):
        if isinstance(path_or_program, Program):
            # the public validation of model_file.load, for a Program made in memory
            model_file.check_program(path_or_program, "Program")
            self.program, self.source = path_or_program, "<Program>"
        elif isinstance(path_or_program, (str, os.PathLike)):
            self.program, self.source = model_file.load(path_or_program), str(path_or_program)
        else:
            raise ModelFileError(f"Session wants a .spsmodel path or a Program, got {type(path_or_program).__name__}")
        if backend not in BACKEND_CHOICES:
            raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
        if backend == "auto":
            name, self.chosen_backend_reason = choose_backend()
        else:
            name, self.chosen_backend_reason = backend, f"backend {backend!r} requested"
        try:
            hw_cfg = get_config(hw) if hw is not None else None
        except KeyError as e:
            raise BackendError(str(e.args[0])) from e
        cls = backend_class(name)
        self.backend = cls(hw=hw_cfg, **backend_options)
        try:
            self.backend.load(self.program)
        except HardwareMismatchError as e:
            self.backend.close()
            if self.source == "<Program>" or self.source in str(e):
                raise
            raise HardwareMismatchError(f"{self.source}: {e}") from e      # name the file the user gave
        except BaseException:
            self.backend.close()
            raise
        log.info("%s on the %s backend (%s)", self.source, name, self.chosen_backend_reason)
        self._runs = 0
        self._last_run = {}
        self._last_infos: List[dict] = []
        # Serializes every use of the backend (write, run, read, stats, close): see the module docstring. A plain
        # Lock, not an RLock: two tasks of one thread must also take turns (run_async takes it without blocking).
        self._lock = threading.Lock()

    # -- inputs ------------------------------------------------------------------------------------------------
    def _batched(self, x, t: TensorInfo, what: str, want_int8: bool, raw_ok: bool = False) -> np.ndarray:
        if isinstance(x, np.ma.MaskedArray):
            raise InputError(f"{what}: a numpy masked array; the model would compute on the data under the mask "
                             f"too: fill it (x.filled(value)) or pass x.data explicitly")
        x = np.asarray(x)
        if want_int8 and x.dtype != np.int8:
            raise InputError(f"{what}: run_int8 wants int8 data, got {x.dtype}; use run() for float input")
        numeric = np.issubdtype(x.dtype, np.floating) or (raw_ok and x.dtype != np.bool_ and
                                                          np.issubdtype(x.dtype, np.integer))
        if not want_int8 and not numeric:
            raise InputError(f"{what}: run wants float32/float64 data"
                             f"{' (or integers: the model preprocesses its input)' if raw_ok else ''}, got "
                             f"{x.dtype}; use run_int8 for int8 buffers")
        shapes = [t.shape]
        alt = _onnx_shape(self.program, "inputs", t)
        if alt and alt != t.shape:
            shapes.append(alt)
        for s in shapes:
            if x.shape == s:
                return x.reshape((1,) + t.shape)
            if x.ndim == len(s) + 1 and x.shape[1:] == s and x.shape[0] >= 1:
                return x.reshape((x.shape[0],) + t.shape)
        expect = " or ".join(f"{s} / (N, {', '.join(map(str, s))})" for s in shapes)
        raise InputError(f"{what}: expected shape {expect}, got {x.shape}")

    def _inputs(self, x, want_int8: bool, preprocess: bool = False) -> List[np.ndarray]:
        ins = self.program.inputs
        if isinstance(x, dict):
            missing = [t.name for t in ins if t.name not in x]
            if missing:
                raise InputError(f"missing inputs {missing}; the model takes {[t.name for t in ins]}")
            xs = [x[t.name] for t in ins]
        elif len(ins) > 1:
            if not isinstance(x, (list, tuple)) or len(x) != len(ins):
                raise InputError(f"the model takes {len(ins)} inputs {[t.name for t in ins]}; pass a list or dict")
            xs = list(x)
        else:
            xs = [x]
        batches = [self._batched(v, t, f"input {t.name!r}", want_int8, raw_ok=preprocess and j == 0)
                   for j, (v, t) in enumerate(zip(xs, ins))]
        n = {b.shape[0] for b in batches}
        if len(n) != 1:
            raise InputError(f"inputs have different batch sizes {sorted(n)}")
        return batches

    # -- running -----------------------------------------------------------------------------------------------
    def _open_backend(self):
        if self.backend is None:
            raise BackendError(f"the session for {self.source} is closed; create a new Session")
        return self.backend

    async def _run_batch(self, qs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Run every sample of the int8 batches; int8 outputs [N, C, H, W] per program output."""
        n = qs[0].shape[0]
        outs = [np.empty((n,) + t.shape, dtype=np.int8) for t in self.program.outputs]
        times, infos = [], []
        await acquire(self._lock)      # the whole batch: the arena holds one sample at a time
        try:
            backend = self._open_backend()
            for j in range(n):
                for q, t in zip(qs, self.program.inputs):
                    backend.write(t.offset, q[j])
                t0 = time.perf_counter()
                infos.append(await backend.run_async() or {})
                times.append(time.perf_counter() - t0)
                for o, t in zip(outs, self.program.outputs):
                    o[j] = backend.read(t.offset, t.nbytes).reshape(t.shape)
            self._runs += n
            self._last_run = {"batch": n, "run_seconds": times}
            self._last_infos = infos
        finally:
            self._lock.release()
        return outs

    def last_run_info(self) -> List[dict]:
        """Per sample of the last batch, what the backend's run() said (e.g. the board's CTRL polls and whether
        the interrupt ended the wait); cheap: no device access, unlike stats()."""
        with self._lock:
            return list(self._last_infos)

    def run_int8(self, x):
        """Raw buffers: int8 (C,H,W) or (N,C,H,W) in (a list/dict for several inputs), int8 (N,C,H,W) out per
        output (a list when the model has several), no preprocessing, no host steps."""
        return run_blocking(self.run_int8_async(x))

    async def run_int8_async(self, x):
        """The coroutine of run_int8()."""
        outs = await self._run_batch(self._inputs(x, want_int8=True))
        return outs[0] if len(outs) == 1 else outs

    def run(self, x, preprocess: bool = True):
        """Float in ((C,H,W) or (N,C,H,W)), float32 out (N, ...) per output (a list when several): the model's
        input preprocessing applied when it has one (and `preprocess`), quantized with the input scale,
        dequantized with the output scales, host steps (softmax) applied. Blocking: runs run_async() to its end."""
        return run_blocking(self.run_async(x, preprocess))

    async def run_async(self, x, preprocess: bool = True):
        """The coroutine of run(): on the board, waits for the core without blocking the event loop."""
        t0 = time.perf_counter()
        pre = self.program.preprocess if preprocess else None
        xs = self._inputs(x, want_int8=False, preprocess=pre is not None)
        if pre is not None:
            xs[0] = apply_preprocess(xs[0], pre)
        for b, t in zip(xs, self.program.inputs):
            if not np.all(np.isfinite(b)):
                raise InputError(f"input {t.name!r} contains NaN or infinity")
        qs = [quantize(b, t.scale) for b, t in zip(xs, self.program.inputs)]
        outs = await self._run_batch(qs)
        result = {}
        for o, t in zip(outs, self.program.outputs):
            shape = _onnx_shape(self.program, "outputs", t) or t.shape
            result[t.name] = dequantize(o, t.scale).reshape((o.shape[0],) + shape)
        result = apply_host_steps(result, self.program.host_steps)
        with self._lock:
            self._last_run["host_seconds"] = time.perf_counter() - t0
        values = [result[t.name] for t in self.program.outputs]
        return values[0] if len(values) == 1 else values

    @property
    def classes(self) -> Optional[List[str]]:
        """Names of the first output's classes, when the model carries them."""
        return self.program.classes

    @property
    def preprocess(self) -> Optional[dict]:
        """The input preprocessing run() applies ({"scale", "mean", "std"}), when the model carries one."""
        return self.program.preprocess

    # -- the rest ----------------------------------------------------------------------------------------------
    def stats(self) -> Stats:
        """The backend's counters of the last run, plus this session's in `extra`: runs so far, per-sample run
        times, why this backend."""
        with self._lock:
            out = self._open_backend().stats()
            out.extra.update({"session_runs": self._runs, **self._last_run,
                              "chosen_backend_reason": self.chosen_backend_reason})
        return out

    @property
    def inputs(self) -> List[TensorInfo]:
        return self.program.inputs

    @property
    def outputs(self) -> List[TensorInfo]:
        return self.program.outputs

    def close(self) -> None:
        lock = getattr(self, "_lock", None)         # absent when __init__ failed before creating it
        if lock is None:
            backend, self.backend = getattr(self, "backend", None), None
        else:
            with lock:                              # never under a run of another thread
                backend, self.backend = self.backend, None
        if backend is not None:
            backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        name = self.backend.name if self.backend is not None else "closed"
        return f"Session({self.source!r}, backend={name!r})"
