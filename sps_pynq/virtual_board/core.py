"""A model of the SPS core behind the virtual board's registers, and the DDR it reads.

On CTRL.START it runs the layer program from the arena in "DDR" (the bytes of a buffer pynq allocated) with the
C golden model (sps_pynq.native) when it builds, else with the numpy reference, in a background thread, like the
hardware: CTRL reads START while it runs, then DONE (or ERROR with ERROR_CODE and CUR_LAYER). The performance
counters and per-layer records are a *model* (the cycle model of hw/cycles.py, bytes per descriptor), not a
measurement; tests use them to exercise the driver, never as performance numbers.

Faults for tests: `fault = "hang"` (never finishes), `fault = ("error", code, layer)` (fails at that layer).

`run_seconds`: a run lasts at least this long (the model's result is held back, the thread sleeps): a stand-in for
the time a real core spends on the FPGA, which costs the host no CPU (scripts/bench_pool.py). 0: as fast as the
host computes it.
"""
from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Tuple

import numpy as np

from ..hw import bands, layout, residency
from ..hw.config import HW_ID_MAGIC, HwConfig
from ..hw.cycles import ZCU104_DDR, layer_cycles
from ..hw.descriptor import DESC_BYTES, STATS_RECORD_BYTES, STATS_WORDS, Descriptor, Op
from ..hw.regmap import REG, CtrlBit, ErrorCode
from ..hw.traffic import bytes_read, layer_traffic


class VirtualDdr:
    """Buffers allocated through pynq, each at a physical address in the PS DDR window."""

    BASE = 0x4000_0000          # start of the window handed out (ZCU104 DDR low is 0 .. 0x7FFF_FFFF)
    LIMIT = 0x8000_0000
    PAGE = 4096

    def __init__(self):
        self.lock = threading.Lock()
        self.buffers: Dict[str, Tuple[int, bytearray]] = {}
        self._next_id = 0

    def allocate(self, size: int) -> Tuple[str, int]:
        size = max(int(size), 1)
        with self.lock:
            taken = sorted((phys, len(buf)) for phys, buf in self.buffers.values())
            phys = self.BASE
            for start, length in taken:          # first fit between existing buffers
                if phys + size <= start:
                    break
                phys = max(phys, (start + length + self.PAGE - 1) // self.PAGE * self.PAGE)
            if phys + size > self.LIMIT:
                raise MemoryError(f"virtual DDR full: cannot allocate {size} bytes")
            self._next_id += 1
            bid = f"buf{self._next_id}"
            self.buffers[bid] = (phys, bytearray(size))
            return bid, phys

    def free(self, bid: str) -> None:
        with self.lock:
            self.buffers.pop(bid, None)

    def find(self, address: int) -> Optional[Tuple[bytearray, int]]:
        """(buffer, offset of `address` in it), or None if no buffer holds the address."""
        with self.lock:
            for phys, buf in self.buffers.values():
                if phys <= address < phys + len(buf):
                    return buf, address - phys
        return None


def _golden():
    """The compiled C golden model, or None (no compiler, not built yet): the numpy reference is used then."""
    try:
        from ..native.build import build
        mod = build()
        return mod if hasattr(mod.lib, "sps_golden_run") else None
    except Exception:       # any failure to build means: fall back to the reference, which needs nothing
        return None


class _Fail(Exception):
    def __init__(self, code: ErrorCode, layer: int):
        super().__init__(code.name)
        self.code, self.layer = code, layer


def _check(d: Descriptor, prev: Optional[Descriptor], hw: HwConfig, size: int, j: int) -> None:
    """What the hardware refuses before running a layer (the golden model checks the same); `prev`: the layer
    run just before (None: the first), which a resident layer's input must have been kept by."""
    def inside(offset, nbytes):
        if offset + nbytes > size:
            raise _Fail(ErrorCode.AXI_ERROR, j)
    if 0 in (d.in_c, d.in_h, d.in_w, d.out_c, d.out_h, d.out_w, d.kh, d.kw, d.stride_h, d.stride_w):
        raise _Fail(ErrorCode.BAD_SHAPE, j)
    if residency.problem(prev, d, hw):
        raise _Fail(ErrorCode.BAD_SHAPE, j)
    if d.op == Op.CONV and d.pps and not (1 <= d.patterns <= hw.max_patterns and 1 <= d.nnz <= 9):
        raise _Fail(ErrorCode.BAD_SHAPE, j)
    if layout.is_shared(d) and layout.share_problem(d, hw):
        raise _Fail(ErrorCode.BAD_SHAPE, j)
    if d.op == Op.ADD:
        in_bytes = d.in_c * d.in_h * d.in_w
        inside(d.in2_offset, in_bytes)
    elif not bands.fits(d, hw):
        raise _Fail(ErrorCode.ACT_BUF_OVERFLOW, j)
    inside(d.in_offset, (d.in_c - 1) * d.in_chan_stride + d.in_h * d.in_w)
    inside(d.out_offset, (d.out_c - 1) * d.out_chan_stride + d.out_h * d.out_w)
    if d.op == Op.CONV:
        P = d.patterns if d.pps else 1
        if layout.group_weight_bytes(d.in_c, d.nnz, hw.rows) > hw.weight_buf_bytes:
            raise _Fail(ErrorCode.WEIGHT_BUF_OVERFLOW, j)
        ss = layout.desc_slot_shift(d)
        inside(d.weight_offset, layout.weight_bytes(d.out_c, d.in_c, d.nnz, P, hw.rows, ss))
        inside(d.param_offset, layout.param_bytes(d.out_c, P, hw.rows, ss))


def model_counters(d: Descriptor, hw: HwConfig) -> Dict[str, int]:
    """The counters of one layer as the cycle model (hw/cycles.py, within a few per cent of the RTL; DDR latency
    of the board assumed) gives them: cycles, MAC-issue cycles, load cycles the compute does not hide as stalls;
    bytes: what the layer reads and writes."""
    c = layer_cycles(d, hw, ZCU104_DDR)
    traffic = layer_traffic(d, hw)
    return {"cycles": c.total, "mac": c.mac, "stall": c.load, "rd": bytes_read(traffic), "wr": traffic["act_written"]}


class VirtualSpsCore:
    """The register file and behaviour of one SPS core, as seen through MMIO."""

    def __init__(self, hw: HwConfig, ddr: VirtualDdr, run_seconds: float = 0.0):
        self.hw = hw
        self.ddr = ddr
        self.run_seconds = run_seconds      # the least time a run takes (see the module docstring)
        self.fault = None
        self.regs = {name: 0 for name in REG}
        self.regs["HW_ID"] = HW_ID_MAGIC
        self.regs["HW_CONFIG"] = hw.fingerprint
        self.regs["HW_BUFFERS"] = hw.buffers_word
        self.regs["CTRL"] = CtrlBit.IDLE
        self._names = {offset: name for name, offset in REG.items()}
        self._lock = threading.Lock()
        self._generation = 0          # bumped by SOFT_RESET so an abandoned run cannot write its results
        self._thread: Optional[threading.Thread] = None
        self._golden = _golden()
        self.executor = "C golden model (sps_pynq.native)" if self._golden else "numpy reference (sps_pynq.reference)"
        self.runs = 0

    # -- MMIO ------------------------------------------------------------------------------------------------
    def read(self, offset: int) -> int:
        name = self._names.get(offset & ~3)
        if name is None:
            return 0
        with self._lock:
            return int(self.regs[name]) & 0xFFFFFFFF

    def write(self, offset: int, value: int) -> None:
        name = self._names.get(offset & ~3)
        if name is None:
            return
        value &= 0xFFFFFFFF
        with self._lock:
            if name == "CTRL":
                if value & CtrlBit.SOFT_RESET:
                    self._generation += 1
                    self.regs["CTRL"] = CtrlBit.IDLE
                    self.regs["ERROR_CODE"] = 0
                    return
                if value & CtrlBit.START and not self.regs["CTRL"] & CtrlBit.START:
                    self.regs["CTRL"] = CtrlBit.START
                    self.regs["ERROR_CODE"] = 0
                    self.regs["CUR_LAYER"] = 0
                    self._generation += 1
                    gen = self._generation
                    self._thread = threading.Thread(target=self._run, args=(gen,), daemon=True,
                                                    name="virtual-sps-core")
                    self._thread.start()
                return
            if name == "ISR":
                self.regs["ISR"] &= ~value
                return
            if name in ("GIE", "IER", "ARENA_LO", "ARENA_HI", "PROG_OFFSET", "NUM_LAYERS", "STATS_OFFSET",
                        "STATS_ENABLE"):
                self.regs[name] = value
            # read-only registers ignore writes, as the RTL does

    # -- a run -----------------------------------------------------------------------------------------------
    def _finish(self, gen: int, error: Optional[_Fail], totals: Dict[str, int]) -> None:
        with self._lock:
            if gen != self._generation:
                return
            for key, reg in (("cycles", "CYCLES"), ("mac", "MAC_CYCLES"), ("stall", "STALL_CYCLES"),
                             ("rd", "BYTES_RD"), ("wr", "BYTES_WR")):
                self.regs[f"{reg}_LO"] = totals[key] & 0xFFFFFFFF
                self.regs[f"{reg}_HI"] = totals[key] >> 32 & 0xFFFFFFFF
            ctrl = CtrlBit.DONE | CtrlBit.IDLE
            if error is not None:
                ctrl |= CtrlBit.ERROR
                self.regs["ERROR_CODE"] = int(error.code)
                self.regs["CUR_LAYER"] = error.layer
                self.regs["ISR"] |= 0b10
            self.regs["ISR"] |= 0b01
            self.regs["CTRL"] = ctrl
            self.runs += 1

    def _run(self, gen: int) -> None:
        t0 = time.monotonic()
        totals = {"cycles": 0, "mac": 0, "stall": 0, "rd": 0, "wr": 0}
        with self._lock:
            r = dict(self.regs)
        fault = self.fault
        if fault == "hang":
            return                      # START stays set until a SOFT_RESET
        try:
            self._execute(gen, r, fault, totals)
            error = None
        except _Fail as e:
            error = e
        left = self.run_seconds - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)            # the modelled core time: nothing of the host's CPU
        self._finish(gen, error, totals)

    def _execute(self, gen, r, fault, totals) -> None:
        address = r["ARENA_HI"] << 32 | r["ARENA_LO"]
        n = r["NUM_LAYERS"]
        if address % 64:
            raise _Fail(ErrorCode.MISALIGNED, 0)
        found = self.ddr.find(address)
        if found is None:
            raise _Fail(ErrorCode.AXI_ERROR, 0)      # DECERR: nothing at that address
        buf, start = found
        arena = np.frombuffer(buf, dtype=np.uint8)[start:]
        stats_on = r["STATS_ENABLE"] & 1
        stats_at = r["STATS_OFFSET"]
        if stats_on and stats_at + n * STATS_RECORD_BYTES > arena.size:
            raise _Fail(ErrorCode.AXI_ERROR, 0)
        prev = None                   # the layer that ran last: a resident layer chains on it
        for j in range(n):
            with self._lock:
                if gen != self._generation:
                    return
                self.regs["CUR_LAYER"] = j
            off = r["PROG_OFFSET"] + j * DESC_BYTES
            if off + DESC_BYTES > arena.size:
                raise _Fail(ErrorCode.AXI_ERROR, j)
            try:
                d = Descriptor.unpack(arena[off:off + DESC_BYTES].tobytes())
            except ValueError:
                raise _Fail(ErrorCode.BAD_OP, j)
            if isinstance(fault, tuple) and fault[0] == "error" and fault[2] == j:
                raise _Fail(ErrorCode(fault[1]), j)
            _check(d, prev, self.hw, arena.size, j)
            self._run_layer(arena, off, d, j)
            prev = d
            c = model_counters(d, self.hw)
            for k in totals:
                totals[k] += c[k]
            if stats_on:
                words = {"cycles": c["cycles"], "mac_cycles": c["mac"], "stall_cycles": c["stall"]}
                rec = np.array([words.get(w, 0) for w in STATS_WORDS], dtype="<u4").view(np.uint8)
                arena[stats_at + j * STATS_RECORD_BYTES: stats_at + (j + 1) * STATS_RECORD_BYTES] = rec
                totals["wr"] += STATS_RECORD_BYTES

    def _run_layer(self, arena: np.ndarray, off: int, d: Descriptor, j: int) -> None:
        if self._golden is not None:
            ffi, lib = self._golden.ffi, self._golden.lib
            cfg = ffi.new("sps_golden_config *", {
                "rows": self.hw.rows, "cols": self.hw.cols, "max_patterns": self.hw.max_patterns,
                "act_buf_bytes": self.hw.act_buf_bytes, "weight_buf_bytes": self.hw.weight_buf_bytes,
                "beat_bytes": self.hw.axi_data_bits // 8,
                "num_threads": 1, "stats_enable": 0, "stats_offset": 0,
                "resume": int(j > 0)})            # one layer at a time: the one before ran last (kept maps)
            status = ffi.new("sps_golden_status *")
            err = lib.sps_golden_run(ffi.from_buffer("uint8_t[]", arena), arena.size, off, 1, cfg, ffi.NULL, status)
            if err:
                try:
                    code = ErrorCode(err)
                except ValueError:
                    code = ErrorCode.BAD_SHAPE
                raise _Fail(code, j)
        else:
            from ..reference import run_layer
            try:
                run_layer(arena, d, self.hw)
            except (ValueError, IndexError):
                raise _Fail(ErrorCode.BAD_SHAPE, j)

    def wait_idle(self, timeout: float = 5.0) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)
