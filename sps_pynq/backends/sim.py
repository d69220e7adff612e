"""The `sim` backend: the C golden model (sps_pynq.native) running the program on an arena in host memory.

Bit-exact with the hardware by construction (tested against the numpy reference and the RTL). Counters in the
spirit of VTA's simulator: per-layer wall time, nonzero and dense-equivalent MACs, and the bytes each layer
moves per buffer kind as the SPS core would (each weight row group and parameter record read once, the input
map read once into the activation buffer, the output written once; descriptors 128 bytes each).

Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import dataclasses
import time
from typing import List, Optional

import numpy as np

from ..hw.config import HwConfig
from ..program import Program
from .arena import HostArenaBackend
from .stats import LayerStats, Stats, program_layers, program_stats

class SimBackend(HostArenaBackend):
    name = "sim"

    def __init__(self, hw: Optional[HwConfig] = None, threads: int = 0, check_buffers: bool = True):
        """threads: 0 = every CPU this process may use; check_buffers: refuse layers that overflow the core's
        on-chip buffers (as the hardware does) rather than run them."""
        super().__init__(hw)
        from ..native import golden           # compiles on first use; BackendError without a C compiler
        self._golden = golden()
        self.threads = int(threads)
        self.check_buffers = bool(check_buffers)
        self.arena: Optional[np.ndarray] = None
        self._static: List[LayerStats] = []
        self._last: dict = {}
        self._cache = None

    def load(self, program: Program) -> None:
        super().load(program)
        self._cache = self._golden.new_cache()
        self._static = program_layers(program)
        self._last = {}

    def run(self) -> None:
        self._need()
        p = self.program
        stats = self.stats_offset()
        t0 = time.perf_counter()
        result = self._golden.run(self.arena, p.prog_offset, p.num_layers, p.hw, stats_offset=stats,
                                  threads=self.threads, check_buffers=self.check_buffers, cache=self._cache)
        seconds = time.perf_counter() - t0
        self._last = {"seconds": seconds, "layer_ns": result.layer_ns}
        result.raise_for_error([layer.name for layer in p.layers])
        return {}

    def stats(self) -> Stats:
        """The last run: host wall time in total and per layer, MACs and bytes per kind from the program."""
        self._need()
        ns = self._last.get("layer_ns", [0] * len(self._static))
        layers = [dataclasses.replace(s, seconds=ns[j] * 1e-9) for j, s in enumerate(self._static)]
        return program_stats(self.name, layers, seconds=self._last.get("seconds", 0.0),
                             note="seconds are wall time of the C golden model on this host, not of the hardware",
                             extra={"threads": self.threads or self._golden.max_threads})

    def close(self) -> None:
        super().close()
        self._cache = None
