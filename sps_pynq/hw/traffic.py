"""What one layer moves between DDR and the core, per kind of data, defined once.

The core reads each layer's descriptor, its weight row groups and parameter records once, its input once into
the activation buffer in whole AXI beats (bands.act_load: a band of a larger map reads each channel's rows from
the beat below its first byte), an ADD both inputs, and writes its output once. A layer cut into bands is
several descriptors: each reads its halo rows and the layer's weights again, which the sum over them shows. A
`resident` layer reads no input (an ADD only input 2): the layer before kept it in the buffer (hw/residency.py).
The sim backend's statistics, the virtual board's byte counters, `inspect` and the compiler's report all use
`layer_traffic`.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from typing import Dict

from . import layout
from .bands import act_load
from .config import HwConfig
from .descriptor import DESC_BYTES, Descriptor, Op

# Keys of layer_traffic(), in the order reports print them.
BYTE_KINDS = ("descriptors", "weights", "params", "act_read", "act_written")


def layer_traffic(d: Descriptor, hw: HwConfig) -> Dict[str, int]:
    """Bytes one layer moves between DDR and the core, per kind (BYTE_KINDS)."""
    beat = hw.axi_data_bits // 8
    out = {"descriptors": DESC_BYTES, "weights": 0, "params": 0, "act_read": 0,
           "act_written": d.out_c * d.out_h * d.out_w}
    if d.op == Op.ADD:              # both inputs, or input 2 alone when input 1 is resident
        out["act_read"] = (1 if d.resident else 2) * -(-d.in_c * d.in_h * d.in_w // beat) * beat
        return out
    out["act_read"] = 0 if d.resident else act_load(d, hw).beats * beat
    if d.op == Op.CONV:
        P = d.patterns if d.pps else 1
        ss = layout.desc_slot_shift(d)
        out["weights"] = layout.weight_bytes(d.out_c, d.in_c, d.nnz, P, hw.rows, ss)
        out["params"] = layout.param_bytes(d.out_c, P, hw.rows, ss)
    return out


def bytes_read(traffic: Dict[str, int]) -> int:
    """Every byte of `traffic` the core reads (all kinds but the written activations)."""
    return sum(v for k, v in traffic.items() if k != "act_written")
