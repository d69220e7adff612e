"""Does every layer fit the hardware? The one fit check, run once after lowering and before the (slower)
calibration, so a model that cannot run fails in a second with the numbers and what to do.

Checked per layer: the input map fits the activation buffer; a CONV's row group (I x K x R bytes) fits the weight
buffer; P fits the indexing unit; pool padding is smaller than the window; the kernel and K fit the descriptor's
kh/kw/nnz fields. (emit.py checks every other descriptor field when it packs the descriptor.) A planner that cuts
a large layer into bands of rows replaces this module.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import CompileError
from ..hw import layout
from ..hw.config import HwConfig
from ..hw.descriptor import MAX_PATTERNS, Op, field_spec
from .lower import Layer

KERNEL_FIELD_BITS = min(field_spec(f)[3] for f in ("kh", "kw", "nnz"))    # 8
KERNEL_FIELD_MAX = (1 << KERNEL_FIELD_BITS) - 1                           # largest kh, kw, K: 255


def check_fits(layers: List[Layer], hw: HwConfig) -> None:
    """CompileError naming the first layer that does not fit `hw`, with the numbers."""
    for layer in layers:
        _check_layer(layer, hw)


def _check_layer(layer: Layer, hw: HwConfig) -> None:
    for t, shape in zip(layer.inputs, [layer.in_shape] * len(layer.inputs)):
        nbytes = int(np.prod(shape))
        if nbytes > hw.act_buf_bytes:
            raise CompileError(f"layer {layer.name}: input {t!r} {list(shape)} is {nbytes} bytes, more than the "
                               f"{hw.act_buf_bytes}-byte activation buffer of {hw.name}; use a smaller input "
                               f"resolution or a hardware configuration with a larger act_buf_bytes")
    if layer.op == Op.CONV:
        if layer.P > min(hw.max_patterns, MAX_PATTERNS):
            raise CompileError(f"layer {layer.name}: {layer.P} patterns, the {hw.name} indexing unit holds at most "
                               f"{hw.max_patterns}; pack with --pps PxK and P <= {hw.max_patterns}")
        group = layout.group_weight_bytes(layer.in_shape[0], layer.K, hw.rows)
        if group > hw.weight_buf_bytes:
            raise CompileError(f"layer {layer.name}: one row group of weights (I={layer.in_shape[0]} x K={layer.K} "
                               f"x R={hw.rows}) is {group} bytes, more than the {hw.weight_buf_bytes}-byte weight "
                               f"buffer of {hw.name}; prune it (smaller K, --pps) or reduce its input channels")
    kh, kw = layer.kernel
    pt, pl, pb, pr = layer.pads
    if layer.op in (Op.MAXPOOL, Op.AVGPOOL) and (max(pt, pb) >= kh or max(pl, pr) >= kw):
        raise CompileError(f"layer {layer.name}: pool padding {list(layer.pads)} is not smaller than its window "
                           f"{kh}x{kw}, so a window can lie entirely in the padding; use pads < kernel")
    if layer.op != Op.ADD and (kh > KERNEL_FIELD_MAX or kw > KERNEL_FIELD_MAX or
                               (layer.op == Op.CONV and layer.K > KERNEL_FIELD_MAX)):
        raise CompileError(f"layer {layer.name}: kernel {kh}x{kw} (K={layer.K}) exceeds the descriptor's "
                           f"{KERNEL_FIELD_BITS}-bit kernel/nnz fields (<= {KERNEL_FIELD_MAX})")
