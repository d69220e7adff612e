"""`Stats`: what every backend reports about its last run, in one shape.

What the program does is the same on every backend (MACs, bytes per kind, from the descriptors); what each
backend can tell about time differs: `sim` measures host wall time per layer, `rtl` and `board` read the
core's clock-cycle counters, and the virtual board's counters are a model, which `modelled` says.
Fields a backend cannot know stay None. Stats and LayerStats also read like the dicts they replace
(`st["cycles"]`, `st.get("note")`), with None fields and empty `extra` left out.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from ..hw.config import HwConfig
from ..hw.descriptor import Descriptor
from ..hw.traffic import BYTE_KINDS, layer_traffic
from ..program import Program


class _ReadsLikeADict:
    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra":
                out.update(v)
            elif f.name == "layers":
                out["layers"] = [layer.to_dict() for layer in v]
            elif v is not None:
                out[f.name] = v
        return out

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)

    def keys(self):
        return self.to_dict().keys()


@dataclass
class LayerStats(_ReadsLikeADict):
    index: int
    name: str
    op: str = ""
    macs: int = 0                               # nonzero multiply-accumulates (CONV)
    dense_macs: int = 0                         # the same layer dense
    bytes: Dict[str, int] = field(default_factory=dict)   # moved between DDR and the core, per BYTE_KINDS
    seconds: Optional[float] = None             # host wall time of the layer (sim)
    cycles: Optional[int] = None                # core clock cycles (rtl, board; modelled on the virtual board)
    mac_cycles: Optional[int] = None            # cycles in which the array accumulated
    stall_cycles: Optional[int] = None          # cycles waiting for memory
    utilization: Optional[float] = None         # mac_cycles / cycles
    mac_efficiency: Optional[float] = None      # macs / (cycles x R x C): the array's MAC slots doing needed work


@dataclass
class Stats(_ReadsLikeADict):
    backend: str
    seconds: float = 0.0                        # host wall time of the last run
    layers: List[LayerStats] = field(default_factory=list)
    macs: int = 0
    dense_macs: int = 0
    mac_reduction: float = 1.0                  # dense_macs / macs
    bytes: Dict[str, int] = field(default_factory=dict)   # the layers' bytes, summed per kind
    cycles: Optional[int] = None                # the core's counters of the whole run (rtl, board)
    mac_cycles: Optional[int] = None
    stall_cycles: Optional[int] = None
    bytes_read: Optional[int] = None
    bytes_written: Optional[int] = None
    mac_efficiency: Optional[float] = None      # macs / (cycles x R x C) over the run (rtl, board)
    modelled: bool = False                      # the counters come from a model (virtual board), not a core
    note: str = ""                              # what the numbers are, in words
    extra: Dict[str, Any] = field(default_factory=dict)   # backend specific: threads, device, polls, ...


def program_layers(program: Program) -> List[LayerStats]:
    """One LayerStats per layer with what the descriptors say (MACs, bytes); only names when a descriptor does
    not decode (the backend reports that layer's error when it runs)."""
    try:
        descs: List[Descriptor] = program.descriptors()
    except ValueError:
        return [LayerStats(index=j, name=info.name) for j, info in enumerate(program.layers)]
    macs = program.layer_macs(descs)
    return [LayerStats(index=j, name=info.name, op=d.op.name, macs=macs[j], dense_macs=d.dense_macs(),
                       bytes=layer_traffic(d, program.hw))
            for j, (info, d) in enumerate(zip(program.layers, descs))]


def _efficiency(macs: int, cycles: Optional[int], hw: Optional[HwConfig]) -> Optional[float]:
    """Nonzero MACs / (cycles x R x C): idle rows and columns, bank conflicts and loads all lower it."""
    if hw is None or cycles is None:
        return None
    return macs / (cycles * hw.rows * hw.cols) if cycles else 0.0


def program_stats(backend: str, layers: List[LayerStats], hw: Optional[HwConfig] = None, **counters) -> Stats:
    """A Stats whose totals (MACs, bytes per kind) are summed over `layers`; `counters` fill the other fields
    (with `hw` and the counters' cycles, the run's MAC efficiency too)."""
    macs = sum(layer.macs for layer in layers)
    dense = sum(layer.dense_macs for layer in layers)
    totals = {k: sum(layer.bytes.get(k, 0) for layer in layers) for k in BYTE_KINDS}
    return Stats(backend=backend, layers=layers, macs=macs, dense_macs=dense,
                 mac_reduction=dense / macs if macs else 1.0, bytes=totals,
                 mac_efficiency=_efficiency(macs, counters.get("cycles"), hw), **counters)


def with_records(layers: List[LayerStats], records: List[dict], hw: Optional[HwConfig] = None) -> List[LayerStats]:
    """`layers` with the cycle counters of the core's per-layer statistics records filled in (and, given the
    core's `hw`, each layer's MAC efficiency)."""
    out = []
    for j, layer in enumerate(layers):
        rec = records[j] if j < len(records) else {}
        cycles = rec.get("cycles")
        mac = rec.get("mac_cycles")
        out.append(LayerStats(**{**{f.name: getattr(layer, f.name) for f in fields(layer)},
                                 "cycles": cycles, "mac_cycles": mac, "stall_cycles": rec.get("stall_cycles"),
                                 "utilization": (mac / cycles if cycles else 0.0) if cycles is not None else None,
                                 "mac_efficiency": _efficiency(layer.macs, cycles, hw)}))
    return out
