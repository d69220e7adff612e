"""Does every layer fit the hardware? The one fit check, run once after lowering and before the (slower)
calibration, so a model that cannot run fails in a second with the numbers and what to do.

Checked per layer: the input can be cut into bands that fit the activation buffer (hw.bands.plan; emit.py cuts
them, knowing the arena offsets); a CONV's row group (I x K x R bytes) fits the weight buffer; P fits the
indexing unit; pool padding is smaller than the window; the kernel and K fit the descriptor's kh/kw/nnz fields.
(emit.py checks every other descriptor field when it packs the descriptor.)
"""
from __future__ import annotations

from typing import List

from ..errors import CompileError
from ..hw import bands, layout
from ..hw.config import HwConfig
from ..hw.descriptor import MAX_PATTERNS, Descriptor, Op, field_spec
from .lower import Layer

KERNEL_FIELD_BITS = min(field_spec(f)[3] for f in ("kh", "kw", "nnz"))    # 8
KERNEL_FIELD_MAX = (1 << KERNEL_FIELD_BITS) - 1                           # largest kh, kw, K: 255


def check_fits(layers: List[Layer], hw: HwConfig) -> None:
    """CompileError naming the first layer that does not fit `hw`, with the numbers."""
    for layer in layers:
        _check_layer(layer, hw)


def whole_map_descriptor(layer: Layer) -> Descriptor:
    """The layer's shape as one descriptor reading and writing whole maps of a tensor at offset 0 (what banding
    depends on: the arena places every tensor on an ALIGN boundary, so offset 0 stands for any of them; and a
    CONV with shared classes, whose input lands in the activation buffer's slices)."""
    (c, h, w), (oc, oh, ow) = layer.in_shape, layer.out_shape
    pt, pl, pb, pr = layer.pads
    d = Descriptor(op=layer.op, in_offset=layer.in_byte_offset, in_c=c, in_h=h, in_w=w, out_c=oc, out_h=oh,
                   out_w=ow, kh=layer.kernel[0],
                   kw=layer.kernel[1], stride_h=layer.strides[0], stride_w=layer.strides[1], pad_top=pt,
                   pad_left=pl, pad_bottom=pb, pad_right=pr, nnz=layer.K or 1)
    if layer.op == Op.CONV and layer.masks:
        d.pps, d.patterns, d.pattern_masks = True, layer.P, list(layer.masks)
    set_sharing(d, layer)
    return d


def set_sharing(d: Descriptor, layer: Layer) -> None:
    """fill_rows's choice into the layer's descriptor: a CONV's classes or a pool's channels share row groups
    (descriptor share / slot_shift, hw/layout.py) when `layer.slot_shift` is set."""
    if layer.slot_shift is not None and layer.op in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL):
        d.share, d.slot_shift = True, layer.slot_shift


def bands_of(layer: Layer, d: Descriptor, hw: HwConfig) -> List[Descriptor]:
    """`d` (the layer's whole-map descriptor, at its arena offsets) as the descriptors the core runs: itself,
    or its bands when its input is larger than the activation buffer; CompileError when no band fits."""
    try:
        return bands.plan(d, hw)
    except bands.CannotBand as e:
        raise CompileError(f"layer {layer.name}: input {list(layer.in_shape)} with kernel {list(layer.kernel)}, "
                           f"stride {list(layer.strides)}: {e} of {hw.name}; use a smaller input width or fewer "
                           f"channels, or a hardware configuration with a larger act_buf_bytes") from e


def _check_layer(layer: Layer, hw: HwConfig) -> None:
    bands_of(layer, whole_map_descriptor(layer), hw)
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
