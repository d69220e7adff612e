"""DDR traffic of a packed network per layer: what its descriptors move (hw.traffic.layer_traffic, bands
included) against the minimum, where every weight, parameter and activation byte moves once.

The extra comes from banding (a band reads the rows its windows share with the next band again, and the layer's
weights again), from whole AXI beats (a band's channel rows start and end inside a beat), and from one
descriptor per band. Torch- and onnx-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

from ..hw.descriptor import DESC_BYTES
from ..hw.traffic import layer_traffic
from ..program import Program


@dataclass
class LayerTraffic:
    name: str
    op: str
    bands: int
    moved: int          # bytes its descriptors move (read + written)
    minimum: int        # weights + params + input(s) + output, once each, and one descriptor
    weights: int        # of `moved`: weight and parameter bytes (re-read once per band)


def _prod(shape) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def network_traffic(program: Program) -> List[LayerTraffic]:
    """Per network layer (the compiler's metadata; bands summed), bytes moved against the minimum."""
    descs = program.descriptors()
    metas = program.metadata.get("layers") or []
    out, j = [], 0
    for m in metas:
        n = int(m.get("bands", 1))
        parts = [layer_traffic(d, program.hw) for d in descs[j:j + n]]
        j += n
        moved = sum(sum(t.values()) for t in parts)
        weights = sum(t["weights"] + t["params"] for t in parts)
        ins = _prod(m["in_shape"]) * (2 if m["op"] == "ADD" else 1)
        minimum = DESC_BYTES + m.get("weight_bytes", 0) + m.get("param_bytes", 0) + ins + _prod(m["out_shape"])
        out.append(LayerTraffic(m["name"], m["op"], n, moved, minimum, weights))
    return out


def totals(rows: List[LayerTraffic]) -> Dict[str, float]:
    moved = sum(r.moved for r in rows)
    minimum = sum(r.minimum for r in rows)
    return {"moved": moved, "minimum": minimum, "ratio": moved / minimum if minimum else 1.0,
            "bands": sum(r.bands for r in rows), "layers": len(rows)}
