"""The `sim` backend: the C golden model (sps_pynq.native) running the program on an arena in host memory.

Bit-exact with the hardware by construction (tested against the numpy reference and the RTL). Counters in the
spirit of VTA's simulator: per-layer wall time, nonzero and dense-equivalent MACs, and the bytes each layer
moves per buffer kind as the SPS core would (each weight row group and parameter record read once, the input
map read once into the activation buffer, the output written once; descriptors 128 bytes each).

Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from ..hw import layout
from ..hw.config import HwConfig
from ..hw.descriptor import DESC_BYTES, Descriptor, Op
from ..program import Program
from .arena import HostArenaBackend

BYTE_KINDS = ("descriptors", "weights", "params", "act_read", "act_written")


def layer_traffic(d: Descriptor, hw: HwConfig) -> dict:
    """Bytes one layer moves between DDR and the core, per buffer kind."""
    in_bytes = d.in_c * d.in_h * d.in_w
    out = {"descriptors": DESC_BYTES, "weights": 0, "params": 0, "act_read": in_bytes,
           "act_written": d.out_c * d.out_h * d.out_w}
    if d.op == Op.CONV:
        P = d.patterns if d.pps else 1
        out["weights"] = layout.weight_bytes(d.out_c, d.in_c, d.nnz, P, hw.rows)
        out["params"] = layout.param_bytes(d.out_c, P, hw.rows)
    elif d.op == Op.ADD:
        out["act_read"] = 2 * in_bytes
    return out


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
        self._static: List[dict] = []
        self._last: dict = {}
        self._cache = None

    def load(self, program: Program) -> None:
        super().load(program)
        self._cache = self._golden.new_cache()
        self._static = []
        try:
            descs = program.descriptors()
        except ValueError:            # an undecodable descriptor: the golden model reports which one at run()
            descs = []
        for j, d in enumerate(descs):
            self._static.append({"index": j, "name": program.layers[j].name, "op": d.op.name,
                                 "macs": d.sparse_macs(), "dense_macs": d.dense_macs(),
                                 "bytes": layer_traffic(d, program.hw)})
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

    def stats(self) -> dict:
        """Counters of the last run: totals and one dict per layer (seconds, MACs, bytes per kind)."""
        self._need()
        ns = self._last.get("layer_ns", [0] * len(self._static))
        layers = [dict(s, seconds=ns[j] * 1e-9) for j, s in enumerate(self._static)]
        totals = {k: sum(s["bytes"][k] for s in self._static) for k in BYTE_KINDS}
        macs = sum(s["macs"] for s in self._static)
        dense = sum(s["dense_macs"] for s in self._static)
        return {"backend": self.name, "threads": self.threads or self._golden.max_threads,
                "seconds": self._last.get("seconds", 0.0), "layers": layers, "macs": macs, "dense_macs": dense,
                "mac_reduction": dense / macs if macs else 1.0, "bytes": totals,
                "note": "seconds are wall time of the C golden model on this host, not of the hardware"}

    def close(self) -> None:
        super().close()
        self._cache = None
