"""Driver of the SPS core: the register sequence, the hardware check, waiting, and error reporting.

`SpsCore` talks to any MMIO-like object with `read(offset) -> int` and `write(offset, value)` (pynq.MMIO on a
board, a fake in tests), so everything here is testable without pynq. The sequence, from the register map:

    once per overlay   identify(): HW_ID, HW_CONFIG, HW_BUFFERS                       3 reads
    once per model     configure(): ARENA_LO/HI, PROG_OFFSET, NUM_LAYERS, STATS_*     6 writes
    once per run       run(): CTRL.START, then wait for DONE or ERROR (interrupt, else polls of CTRL)
                                                                                      1 write + a few reads
    on demand          counters() (10 reads), status_dump() (every register)

Async in PYNQ's convention: `run_async()` / `wait_async()` are coroutines (the interrupt path awaits
`pynq.Interrupt.wait()`, the polling path `asyncio.sleep`), and the blocking `run()` runs `run_async()` to its end
(`run_blocking`: on this thread's own loop, or, when a loop already runs in this thread as in a Jupyter cell, on a
helper thread), so the interrupt is used from a script, a thread and a notebook alike.

One core, several SpsCores: the configuration registers (ARENA, PROG_OFFSET, NUM_LAYERS, STATS_*, IER, GIE) hold
one program at a time, but two Sessions in one process may load two programs onto the same core. Each SpsCore
names its core by a `key`; a process-wide record per key says which SpsCore wrote the configuration last, and
run() writes its own again first when another one did (and serializes the runs of all SpsCores of the core).

Over PYNQ's remote protocol each register access is a network round trip (~0.3 ms), so the per-run path touches
as few registers as it can: polling starts near the expected end of the run and backs off exponentially.

Torch- and onnx-free: this runs on the board.
"""
from __future__ import annotations

import asyncio
import inspect
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..aio import acquire, run_blocking
from ...errors import DeviceError, DeviceTimeoutError, HardwareMismatchError
from ...hw.config import CONFIGS, FORMAT_VERSION, HW_ID_MAGIC, HwConfig
from ...hw.descriptor import decode_stats_records
from ...hw.regmap import REG, REGISTERS, CtrlBit, ErrorCode

# 64-bit counters: (name in stats, LO register); HI is at LO + 4.
COUNTERS = (("cycles", "CYCLES_LO"), ("mac_cycles", "MAC_CYCLES_LO"), ("stall_cycles", "STALL_CYCLES_LO"),
            ("bytes_read", "BYTES_RD_LO"), ("bytes_written", "BYTES_WR_LO"))


def _describe_words(config_word: int, buffers_word: int) -> str:
    try:
        cfg = HwConfig.from_words(config_word, buffers_word)
    except ValueError as e:
        return f"an invalid configuration ({e})"
    for named in CONFIGS.values():       # say the familiar name when the core is a known build
        if named.same_hardware(cfg):
            cfg = named
            break
    return cfg.describe()


@dataclass
class CoreIdentity:
    hw_id: int
    config_word: int
    buffers_word: int

    def describe(self) -> str:
        return (f"HW_CONFIG=0x{self.config_word:08x} HW_BUFFERS=0x{self.buffers_word:08x} "
                f"({_describe_words(self.config_word, self.buffers_word)})")


class _CoreRecord:
    """What this process knows of one physical core: who configured it last, and a lock held for each run."""

    def __init__(self):
        self.lock = threading.Lock()        # a plain Lock: an async run takes it without blocking its loop
        self.owner: Optional[object] = None


_RECORDS: Dict[object, _CoreRecord] = {}
_RECORDS_LOCK = threading.Lock()


def core_record(key) -> _CoreRecord:
    with _RECORDS_LOCK:
        rec = _RECORDS.get(key)
        if rec is None:
            rec = _RECORDS[key] = _CoreRecord()
        return rec


class SpsCore:
    """One SPS core behind an MMIO window.

    mmio        object with read(offset) -> int and write(offset, value), 32-bit registers
    where       a name for messages (e.g. "sps_core_0 at 0xa0000000 in overlays/zcu104/sps.bit")
    interrupt   optional object with a coroutine wait() that returns when the core's interrupt fires
                (pynq.Interrupt; the board backend passes irq.ThreadInterrupt, which can be awaited from any loop
                and thread); None: the driver polls CTRL
    key         names the physical core in this process: SpsCores with equal keys share its configuration
                registers (see the module docstring); default: this SpsCore alone
    clock, sleep  injectable for tests (sleep may be a plain function or a coroutine function)
    """

    def __init__(self, mmio, where: str = "SPS core", interrupt=None, key=None,
                 clock: Callable[[], float] = time.monotonic, sleep: Optional[Callable] = None):
        self.mmio = mmio
        self.where = where
        self.interrupt = interrupt
        self._clock = clock
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._token = object()
        self._record = core_record(key if key is not None else ("SpsCore", id(self._token)))
        self._config: Optional[Tuple[int, int, int, int, bool]] = None
        self.layer_names: List[str] = []
        self.last_run_seconds = 0.0
        self.last_polls = 0
        self.last_wait = ""                 # "interrupt" or "poll": how the last run's end was seen
        self.reconfigured = 0               # runs that first wrote the configuration again (another SpsCore had)

    # -- registers -------------------------------------------------------------------------------------------
    def read(self, name: str) -> int:
        return int(self.mmio.read(REG[name])) & 0xFFFFFFFF

    def write(self, name: str, value: int) -> None:
        self.mmio.write(REG[name], int(value) & 0xFFFFFFFF)

    # -- once per overlay / model ------------------------------------------------------------------------------
    def identify(self) -> CoreIdentity:
        """Read HW_ID, HW_CONFIG and HW_BUFFERS; refuse something that is not an SPS core."""
        ident = CoreIdentity(self.read("HW_ID"), self.read("HW_CONFIG"), self.read("HW_BUFFERS"))
        if ident.hw_id != HW_ID_MAGIC:
            raise HardwareMismatchError(
                f"{self.where}: HW_ID reads 0x{ident.hw_id:08x}, expected 0x{HW_ID_MAGIC:08x} (\"SPS1\"); this "
                f"address holds no SPS core: load an SPS overlay (overlays/<board>/sps.bit) or fix its address")
        return ident

    def check(self, hw: HwConfig, ident: Optional[CoreIdentity] = None, model: str = "model") -> CoreIdentity:
        """Refuse a program packed for other hardware than the core reports, naming both."""
        ident = ident or self.identify()
        if ident.config_word != hw.fingerprint or ident.buffers_word != hw.buffers_word:
            version_hint = ""
            if (ident.config_word >> 16 & 0xFF) != FORMAT_VERSION:
                version_hint = (f" (the core speaks format version {ident.config_word >> 16 & 0xFF}, this sps-pynq "
                                f"packs version {FORMAT_VERSION})")
            raise HardwareMismatchError(
                f"{model} was packed for {hw.describe()} (HW_CONFIG=0x{hw.fingerprint:08x} "
                f"HW_BUFFERS=0x{hw.buffers_word:08x}), but {self.where} is {ident.describe()}{version_hint}; "
                f"re-pack the model for this overlay (`sps-pynq pack --hw ...`) or load the overlay it was built for")
        return ident

    def configure(self, arena_address: int, prog_offset: int, num_layers: int, stats_offset: int,
                  stats_enable: bool = True, layer_names: Sequence[str] = ()) -> None:
        """Point the core at a program in the arena (6 register writes, 8 with the interrupt; once per model)."""
        if arena_address % 64:
            raise DeviceError(f"{self.where}: arena at 0x{arena_address:x} is not 64-byte aligned; the core "
                              f"needs ARENA aligned to 64 bytes (allocate it with pynq.allocate)")
        self._config = (arena_address, prog_offset, num_layers, stats_offset, bool(stats_enable))
        self.layer_names = list(layer_names)
        with self._record.lock:             # not while another SpsCore of this core runs
            self._write_config()

    def _write_config(self) -> None:
        arena_address, prog_offset, num_layers, stats_offset, stats_enable = self._config
        self.write("ARENA_LO", arena_address & 0xFFFFFFFF)
        self.write("ARENA_HI", arena_address >> 32)
        self.write("PROG_OFFSET", prog_offset)
        self.write("NUM_LAYERS", num_layers)
        self.write("STATS_OFFSET", stats_offset)
        self.write("STATS_ENABLE", 1 if stats_enable else 0)
        if self.interrupt is not None:
            self.write("ISR", 0b11)      # nothing stale pending
            self.write("IER", 0b11)      # interrupt on DONE and on ERROR
            self.write("GIE", 1)
        elif self._record.owner is not None:
            self.write("GIE", 0)         # another SpsCore of this core may have enabled its interrupt
        self._record.owner = self._token

    # -- once per run ----------------------------------------------------------------------------------------
    def run(self, timeout: float, expected_seconds: float = 0.0) -> None:
        """START the program and wait for DONE; DeviceError on ERROR, DeviceTimeoutError after `timeout` s.
        Blocking: runs run_async() to its end (run_blocking)."""
        return run_blocking(self.run_async(timeout, expected_seconds))

    async def run_async(self, timeout: float, expected_seconds: float = 0.0) -> None:
        """The coroutine of run(): while it waits for the core, the event loop runs other tasks."""
        rec = self._record
        await acquire(rec.lock)
        try:
            if self._config is not None and rec.owner is not self._token:
                self._write_config()        # another SpsCore pointed the core at its program since
                self.reconfigured += 1
            t0 = self._clock()
            self.write("CTRL", CtrlBit.START)
            ctrl = await self.wait_async(timeout, expected_seconds, t0)
            self.last_run_seconds = self._clock() - t0
        finally:
            rec.lock.release()
        if ctrl & CtrlBit.ERROR:
            raise self._error()

    async def wait_async(self, timeout: float, expected: float = 0.0, t0: Optional[float] = None) -> int:
        """Wait for the run in progress to end (DONE or ERROR) and return CTRL: await the interrupt
        (`interrupt.wait()`, then read CTRL once and clear ISR), else poll CTRL near the expected end with
        exponential back-off. DeviceTimeoutError (core soft-reset) after `timeout` s from `t0`."""
        deadline = (self._clock() if t0 is None else t0) + timeout
        self.last_polls = 0
        if self.interrupt is not None:
            self.last_wait = "interrupt"
            try:
                await asyncio.wait_for(self.interrupt.wait(), max(0.0, deadline - self._clock()))
                fired = True
            except asyncio.TimeoutError:
                fired = False
            ctrl = self.read("CTRL")
            self.last_polls = 1
            self.write("ISR", 0b11)     # write-1-to-clear, so the next run's interrupt is fresh
            if ctrl & (CtrlBit.DONE | CtrlBit.ERROR):
                return ctrl
            if not fired:
                raise self._timeout(timeout)
            # a spurious interrupt: poll for the time that is left
        else:
            self.last_wait = "poll"
        # First look near the expected end, then back off: few accesses for long runs, low latency for short.
        if expected > 0:
            await self._pause(min(expected * 0.9, max(0.0, deadline - self._clock())))
        interval = max(20e-6, expected / 64)
        max_interval = max(1e-3, expected / 16)
        while True:
            ctrl = self.read("CTRL")
            self.last_polls += 1
            if ctrl & (CtrlBit.DONE | CtrlBit.ERROR):
                return ctrl
            now = self._clock()
            if now >= deadline:
                raise self._timeout(timeout)
            await self._pause(min(interval, deadline - now))
            interval = min(interval * 2, max_interval)

    async def _pause(self, seconds: float) -> None:
        result = self._sleep(seconds)
        if inspect.isawaitable(result):
            await result
        else:
            await asyncio.sleep(0)

    # -- failures --------------------------------------------------------------------------------------------
    def _layer_text(self, index: int) -> str:
        if 0 <= index < len(self.layer_names):
            return f"layer {index} ({self.layer_names[index]})"
        return f"layer {index}"

    def _error(self) -> DeviceError:
        code = self.read("ERROR_CODE")
        layer = self.read("CUR_LAYER")
        try:
            err = ErrorCode(code)
            what = f"{err.name}: {err.text}"
        except ValueError:
            what = f"unknown error code {code}"
        return DeviceError(f"{self.where}: {self._layer_text(layer)} failed with ERROR_CODE {code} ({what}); "
                           f"the model does not match what this core supports, re-pack it for this overlay, or "
                           f"report it with the status below\n{self.status_dump()}")

    def _timeout(self, timeout: float) -> DeviceTimeoutError:
        dump = self.status_dump()
        layer = self.read("CUR_LAYER")
        self.soft_reset()
        return DeviceTimeoutError(
            f"{self.where}: no DONE after {timeout:g} s (stuck in {self._layer_text(layer)}); the core was soft-reset. "
            f"Check that the overlay is loaded and the clock runs, or raise the timeout for a large model. "
            f"Status registers at the timeout:\n{dump}")

    def soft_reset(self) -> None:
        self.write("CTRL", CtrlBit.SOFT_RESET)

    def registers(self) -> Dict[str, int]:
        return {r.name: self.read(r.name) for r in REGISTERS}

    def status_dump(self) -> str:
        """Every register by name, in hex, with CTRL bits and the error code decoded."""
        lines = []
        for name, value in self.registers().items():
            note = ""
            if name == "CTRL":
                bits = [b.name for b in CtrlBit if value & b]
                note = f"  [{' '.join(bits) or 'none'}]"
            elif name == "ERROR_CODE":
                try:
                    note = f"  [{ErrorCode(value).name}]"
                except ValueError:
                    note = "  [unknown]"
            lines.append(f"  {name:<16} 0x{value:08x}{note}")
        return "\n".join(lines)

    def counters(self) -> Dict[str, int]:
        """The 64-bit performance counters of the last run."""
        out = {}
        for key, lo in COUNTERS:
            lo_v = self.read(lo)
            hi_v = int(self.mmio.read(REG[lo] + 4)) & 0xFFFFFFFF
            out[key] = hi_v << 32 | lo_v
        return out


def parse_stats_records(raw: np.ndarray, num_layers: int, layer_names: Sequence[str] = ()) -> List[dict]:
    """Per-layer records the core wrote to the stats area: cycles, MAC-active cycles, stall cycles, reserved."""
    records = []
    raw = np.ascontiguousarray(raw, dtype=np.uint8).tobytes()
    for j, rec in enumerate(decode_stats_records(raw, num_layers)):
        cycles, mac, stall = rec["cycles"], rec["mac_cycles"], rec["stall_cycles"]
        records.append({"index": j, "name": layer_names[j] if j < len(layer_names) else f"layer{j}",
                        "cycles": cycles, "mac_cycles": mac, "stall_cycles": stall,
                        "utilization": mac / cycles if cycles else 0.0})
    return records
