"""The C golden model (golden.c), compiled on first use (see build.py), behind a small numpy-facing wrapper.

    from sps_pynq.native import golden
    result = golden().run(arena, prog_offset, num_layers, hw)      # arena: 1-D uint8 numpy array, in place
    cache = golden().new_cache()                                   # optional: keep prepared weights between
    result = golden().run(arena, prog_offset, num_layers, hw, cache=cache)     # runs of one program
    result.error, result.layer, result.message, result.layer_ns

`GoldenResult.raise_for_error()` turns an error code into `DeviceError` naming the layer, as the board does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import DeviceError
from ..hw.config import HwConfig
from ..hw.regmap import ErrorCode


@dataclass
class GoldenResult:
    error: int                 # ErrorCode value, 0 when every layer ran
    layer: int                 # failing layer index, -1 if none
    message: str               # details from the model (offsets, shapes)
    layer_ns: List[int]        # wall time per layer in nanoseconds (0 for layers that did not run)

    def raise_for_error(self, layer_names: Optional[List[str]] = None) -> None:
        if not self.error:
            return
        name = ""
        if layer_names and 0 <= self.layer < len(layer_names):
            name = f" ({layer_names[self.layer]})"
        raise DeviceError(f"layer {self.layer}{name} failed with error {self.error} "
                          f"({ErrorCode(self.error).name}: {ErrorCode(self.error).text}): {self.message}")


class GoldenModel:
    def __init__(self, module):
        self.ffi, self.lib = module.ffi, module.lib

    def new_cache(self):
        """A prepared-weights cache for repeated runs of one program (freed with the object). Entries are
        re-checked against the arena bytes on every run, so results never depend on it."""
        return self.ffi.gc(self.lib.sps_golden_cache_new(), self.lib.sps_golden_cache_free)

    @property
    def max_threads(self) -> int:
        return int(self.lib.sps_golden_threads())

    def run(self, arena: np.ndarray, prog_offset: int, num_layers: int, hw: HwConfig, *,
            stats_offset: Optional[int] = None, threads: int = 0, check_buffers: bool = True,
            cache=None) -> GoldenResult:
        """Run `num_layers` descriptors at `prog_offset` on `arena` in place. `check_buffers` applies the
        hardware's activation/weight buffer limits (errors 2 and 3) as the core would."""
        if not (isinstance(arena, np.ndarray) and arena.dtype == np.uint8 and arena.ndim == 1
                and arena.flags.c_contiguous and arena.flags.writeable):
            raise TypeError("the arena must be a writable, contiguous 1-D uint8 numpy array")
        cfg = self.ffi.new("sps_golden_config *")
        cfg.rows, cfg.cols, cfg.max_patterns = hw.rows, hw.cols, hw.max_patterns
        cfg.act_buf_bytes = hw.act_buf_bytes if check_buffers else 0
        cfg.weight_buf_bytes = hw.weight_buf_bytes if check_buffers else 0
        cfg.beat_bytes = hw.axi_data_bits // 8
        cfg.num_threads = int(threads)
        cfg.stats_enable = stats_offset is not None
        cfg.stats_offset = int(stats_offset or 0)
        status = self.ffi.new("sps_golden_status *")
        ns = np.zeros(max(num_layers, 1), dtype=np.uint64)
        self.lib.sps_golden_run_cached(self.ffi.from_buffer("uint8_t[]", arena), arena.size, int(prog_offset),
                                       int(num_layers), cfg, self.ffi.cast("uint64_t *", ns.ctypes.data), status,
                                       cache if cache is not None else self.ffi.NULL)
        return GoldenResult(int(status.error), int(status.layer),
                            self.ffi.string(status.message).decode(errors="replace"),
                            [int(v) for v in ns[:num_layers]])


_MODEL: Optional[GoldenModel] = None


def golden() -> GoldenModel:
    """The golden model, compiled on first use (raises BackendError if no C compiler works)."""
    global _MODEL
    if _MODEL is None:
        from .build import build
        _MODEL = GoldenModel(build())
    return _MODEL
