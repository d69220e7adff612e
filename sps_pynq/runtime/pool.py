"""`BoardPool`: one packed model on several boards (PYNQ remote devices), inputs spread over them.

    with BoardPool("resnet20.spsmodel", ["10.0.0.11", "10.0.0.12:7967"]) as pool:
        y = pool.run(x)                 # float (N, C, H, W) in, (N, ...) out, in input order
        print(pool.boards, pool.failed, pool.stats())

Each board has its own `Session` (backend "board", device "host[:port]": PYNQ 4's remote protocol, which the
virtual ZCU104 speaks too) and its own worker thread. A batch is split into single inputs; an idle board takes the
next one. A board holds one input at a time (its Session runs one sample at a time on its one arena), so every
input goes to a board with nothing else to do, the least busy, and a fast board takes more inputs than a slow
one. Results are put back in input order.

A board whose run raises (a device error, its backend's own timeout, a lost connection) or that has not answered
within `timeout` seconds is taken out of the pool for good: its error is kept in `failed`, the input it held goes
back to the front of the queue for the others, so no input is lost. A mistake in the input (`InputError`) is the
caller's, not the board's: the batch stops with it and the board stays. When no board is left, the batch (and
every later one) fails with one `PoolError` naming each board and its error.

Several threads may call run() at once; their inputs share the queue in arrival order.

Torch- and onnx-free: this runs on a host next to the boards, or on a board.
"""
from __future__ import annotations

import collections
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .. import model_file
from ..errors import InputError, ModelFileError, PoolError, SpsError
from ..program import Program
from .session import Session

DEFAULT_TIMEOUT_S = 30.0      # above the board backend's own run timeout (10 s), which dumps the registers first

OnResult = Callable[[int, str], None]


class _Board:
    """One member of the pool: its Session, its thread, what it holds and what it did."""

    def __init__(self, name: str, session: Session):
        self.name = name
        self.session = session
        self.alive = True
        self.error: Optional[str] = None
        self.current = None           # (job, index, start time) of the input it runs
        self.done = 0                 # inputs it finished
        self.busy_seconds = 0.0       # time spent in runs that finished
        self.thread: Optional[threading.Thread] = None


class _Job:
    """One call of run(): its inputs, the results so far, how it ends."""

    def __init__(self, items: list, int8: bool, preprocess: bool, on_result: Optional[OnResult]):
        self.items = items
        self.int8 = int8
        self.preprocess = preprocess
        self.on_result = on_result
        self.results: List[object] = [None] * len(items)
        self.remaining = len(items)
        self.error: Optional[BaseException] = None

    @property
    def finished(self) -> bool:
        return self.remaining == 0 or self.error is not None


class BoardPool:
    """Run one model on several boards. `boards`: addresses "host[:port]" of PYNQ remote devices (each gets a
    Session(model, backend="board", device=address, hw=hw, **backend_options)), or Sessions already open (the
    pool then owns and closes them). `timeout`: seconds a board may take for one input before it is taken out.
    `on_result` of run(): called as on_result(index, board name) on the board's thread when an input is done,
    before that board takes its next one (progress reports; keep it short)."""

    def __init__(self, model: Union[str, os.PathLike, Program], boards: Sequence[Union[str, Session]],
                 timeout: float = DEFAULT_TIMEOUT_S, hw=None, **backend_options):
        try:
            self._open(model, list(boards), timeout, hw, backend_options)
        except BaseException:
            for b in boards:                 # the pool owns the Sessions it was given, also when it fails
                if isinstance(b, Session):
                    b.close()
            raise

    def _open(self, model, boards: list, timeout: float, hw, backend_options: dict) -> None:
        if not boards:
            raise PoolError("a BoardPool needs at least one board (an address host[:port] or a Session)")
        if not timeout > 0:
            raise PoolError(f"timeout must be a positive number of seconds, got {timeout!r}")
        names = [b if isinstance(b, str) else f"{i}: {_session_label(b)}" for i, b in enumerate(boards)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PoolError(f"board {', '.join(twice)} listed twice: one Session per board (two on one board would "
                            f"share its one core)")
        self.timeout = float(timeout)
        self.source = str(model) if not isinstance(model, Program) else "<Program>"
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()      # (job, index) waiting for a board
        self._closed = False
        self._boards: List[_Board] = []
        program = model if isinstance(model, Program) else model_file.load(model)       # checked once, here
        try:
            for name, b in zip(names, boards):
                if not isinstance(b, str):
                    self._boards.append(_Board(name, b))
                    continue
                try:
                    session = Session(program, backend="board", hw=hw, device=b, **backend_options)
                except (ModelFileError, TypeError):
                    raise                    # the model or the options, the same on every board
                except Exception as e:       # this board: unreachable, busy, another overlay, ...
                    board = _Board(name, None)
                    board.alive, board.error = False, _describe(e)
                    self._boards.append(board)
                    continue
                session.source = self.source
                self._boards.append(_Board(name, session))
        except BaseException:
            self._close_sessions()
            raise
        if not any(b.alive for b in self._boards):
            raise PoolError(self._all_failed_text(f"no board of the pool could load {self.source}"))
        self.program = program
        other = [b.name for b in self._boards if b.alive and b.session.program.image != program.image]
        if other:
            self._close_sessions()
            raise PoolError(f"the Sessions of {', '.join(other)} run another model than {self.source}: a pool runs "
                            f"one model")
        for b in self._boards:
            if b.alive:
                b.thread = threading.Thread(target=self._work, args=(b,), daemon=True, name=f"pool {b.name}")
                b.thread.start()

    # -- what the caller sees ----------------------------------------------------------------------------------
    @property
    def boards(self) -> List[str]:
        """The boards still in the pool."""
        with self._cond:
            return [b.name for b in self._boards if b.alive]

    @property
    def failed(self) -> Dict[str, str]:
        """The boards taken out of the pool, each with its error."""
        with self._cond:
            return {b.name: b.error for b in self._boards if not b.alive}

    def stats(self) -> List[dict]:
        """Per board: in the pool or not, inputs done, seconds spent in runs that finished, its error."""
        with self._cond:
            return [{"board": b.name, "alive": b.alive, "inputs": b.done, "busy_seconds": b.busy_seconds,
                     "error": b.error} for b in self._boards]

    def run(self, x, preprocess: bool = True, on_result: Optional[OnResult] = None):
        """Session.run over the pool: float (C,H,W) or (N,C,H,W) in (a list/dict for several inputs), float32
        (N, ...) out per output (a list when several), in input order."""
        return self._map(x, int8=False, preprocess=preprocess, on_result=on_result)

    def run_int8(self, x, on_result: Optional[OnResult] = None):
        """Session.run_int8 over the pool: raw int8 in, int8 (N, C, H, W) out per output."""
        return self._map(x, int8=True, preprocess=False, on_result=on_result)

    # -- a batch -----------------------------------------------------------------------------------------------
    def _split(self, x, int8: bool, preprocess: bool) -> list:
        """The batch as single inputs, each as Session.run takes it, checked (shapes, dtypes) before any runs."""
        template = self._template()
        pre = preprocess and template.program.preprocess is not None
        batches = template._inputs(x, want_int8=int8, preprocess=pre)
        n = batches[0].shape[0]
        if len(batches) == 1:
            return [batches[0][j:j + 1] for j in range(n)]
        return [[b[j:j + 1] for b in batches] for j in range(n)]

    def _template(self) -> Session:
        with self._cond:
            for b in self._boards:
                if b.alive:
                    return b.session
            raise PoolError(self._all_failed_text("every board of the pool has failed"))

    def _map(self, x, int8: bool, preprocess: bool, on_result: Optional[OnResult]):
        if self._closed:
            raise PoolError(f"the pool for {self.source} is closed; create a new BoardPool")
        job = _Job(self._split(x, int8, preprocess), int8, preprocess, on_result)
        with self._cond:
            self._queue.extend((job, j) for j in range(len(job.items)))
            self._cond.notify_all()
            try:
                while not job.finished:
                    if not any(b.alive for b in self._boards):
                        done = len(job.items) - job.remaining
                        job.error = PoolError(self._all_failed_text(
                            f"every board of the pool has failed; {done} of {len(job.items)} inputs were done"))
                        break
                    self._expire(time.monotonic())
                    self._cond.wait(timeout=self._next_deadline(time.monotonic()))
            finally:                  # also when the caller is interrupted: its inputs leave the queue
                if not job.finished:
                    job.error = PoolError("the batch was interrupted")
                self._drop(job)
        if job.error is not None:
            raise job.error
        return _gather(job.results)

    def _expire(self, now: float) -> None:
        """Take out every board that has held one input longer than the timeout (under the lock)."""
        for b in self._boards:
            if b.alive and b.current is not None and now - b.current[2] > self.timeout:
                job, j, _ = b.current
                self._take_out(b, f"no answer for input {j} within {self.timeout:g} s (timeout)", (job, j))

    def _next_deadline(self, now: float) -> float:
        ends = [b.current[2] + self.timeout - now for b in self._boards if b.alive and b.current is not None]
        return min([0.5] + [max(0.01, e) for e in ends])

    def _take_out(self, board: _Board, error: str, held=None) -> None:
        """Out of the pool (under the lock); the input it held goes to the front of the queue."""
        board.alive = False
        board.error = error
        board.current = None
        if held is not None:
            job, j = held
            if not job.finished and job.results[j] is None:
                self._queue.appendleft((job, j))
        self._cond.notify_all()

    def _drop(self, job: _Job) -> None:
        """Forget the queued inputs of a job that ended (under the lock)."""
        if any(entry[0] is job for entry in self._queue):
            self._queue = collections.deque(e for e in self._queue if e[0] is not job)

    # -- a board's thread --------------------------------------------------------------------------------------
    def _work(self, board: _Board) -> None:
        while True:
            with self._cond:
                while board.alive and not self._closed and not self._queue:
                    self._cond.wait()
                if not board.alive or self._closed:
                    break
                job, j = self._queue.popleft()
                t0 = time.monotonic()
                board.current = (job, j, t0)
                self._cond.notify_all()          # the waiting caller learns the new deadline
            try:
                if job.int8:
                    out, error = board.session.run_int8(job.items[j]), None
                else:
                    out, error = board.session.run(job.items[j], preprocess=job.preprocess), None
            except BaseException as e:           # noqa: B902 (a board's failure of any kind takes it out)
                out, error = None, e
            report = False
            with self._cond:
                if not board.alive:              # timed out meanwhile: its input already went to another board
                    break
                board.current = None
                if error is None:
                    board.done += 1
                    board.busy_seconds += time.monotonic() - t0
                    if not job.finished and job.results[j] is None:
                        job.results[j] = out
                        job.remaining -= 1
                        report = job.on_result is not None
                elif isinstance(error, InputError):
                    if not job.finished:         # the caller's input, not the board: the batch ends with it
                        job.error = error
                else:
                    self._take_out(board, f"input {j}: {_describe(error)}", (job, j))
                    break
                self._cond.notify_all()
            if report:
                try:
                    job.on_result(j, board.name)
                except BaseException as e:       # noqa: B902 (the caller's callback: its error ends the batch)
                    with self._cond:
                        if not job.finished:
                            job.error = e
                        self._cond.notify_all()
        self._close_session(board)

    # -- the end -----------------------------------------------------------------------------------------------
    def _all_failed_text(self, what: str) -> str:
        lines = "; ".join(f"{b.name}: {b.error}" for b in self._boards if not b.alive)
        return f"{self.source}: {what} ({lines}); check the boards (or start them), then create a new BoardPool"

    def _close_session(self, board: _Board) -> None:
        session, board.session = board.session, None
        if session is not None:
            try:
                session.close()
            except Exception:
                pass

    def _close_sessions(self) -> None:
        for b in self._boards:
            self._close_session(b)

    def close(self) -> None:
        """Stop the boards' threads (each after its current input) and close their Sessions. A board stuck in a
        run that never returns is left to its (daemon) thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = [b.thread for b in self._boards if b.alive and b.thread is not None]
        for t in threads:
            t.join(self.timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"BoardPool({self.source!r}, boards={self.boards}, failed={list(self.failed)})"


def _session_label(session: Session) -> str:
    backend = getattr(session, "backend", None)
    device = getattr(backend, "device", None)
    if device is not None:
        return str(getattr(device, "name", None) or device)
    return getattr(backend, "name", "closed")


def _describe(e: BaseException) -> str:
    text = str(e).splitlines()[0][:400] if str(e) else "no detail"
    return text if isinstance(e, SpsError) else f"{type(e).__name__}: {text}"


def _gather(results: list):
    """The per-input results ((1, ...) arrays, or lists of them for several outputs) as one batch per output."""
    if isinstance(results[0], list):
        return [np.concatenate([r[k] for r in results]) for k in range(len(results[0]))]
    return np.concatenate(results)
