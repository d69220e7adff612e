"""Layer outputs kept in the activation buffer for the next layer (descriptor keep / resident / in_half).

A layer's input load is pure DDR traffic the array waits for: on ResNet-20 at 16 x 16 it is about a sixth of
the run. When layer N+1 reads exactly what layer N wrote, N can also write its output into the activation buffer
as it goes (`keep`), and N+1 skips its load (`resident`): the buffer's slices are cut in two halves, the running
layer's input in one, the kept output written into the other, and the next layer's input is that other half
(`in_half`), so a chain of layers ping-pongs between the halves. The output still goes to DDR as well (a later
layer, e.g. a residual ADD, may read it from there). A reader with an even horizontal stride reads the buffer in
the skewed bank mapping (odd rows hold their byte pairs swapped, docs/hardware.md "Stride 2"): the layer that
keeps for it writes the map so (`keep_skew`).

The kept map is in the shared layout (layout.py, bands.act_load): channel c in slice c mod ACT_LANES at
`half + (c div ACT_LANES) * stride + pixel`, half = 0 or act_buf_bytes / ACT_LANES / 2, stride the plane rounded up
to whole AXI beats and buffer rows (`bands.kept_stride`), so every kept row is one buffer row. Rules (the core,
the golden model and the compiler apply the same; a violation is BAD_SHAPE):

* `keep`: a CONV with shared classes or an ADD; the whole output map (out_map_h 0); output planes a whole number
  of buffer rows (out_h * out_w a multiple of C) at a beat-aligned out_offset; the kept map and the layer's own
  input each within half a slice (an input loaded into half 0; an ADD's input 1 loaded flat takes
  in_c * in_h * in_w bytes from buffer byte 0).
* `resident`: a CONV (with shared classes or not: a plain one finds channel c in slice c mod ACT_LANES as a shared
  one does), a shared pool, or an ADD (its input 1); the whole input map (in_map_h 0); the layer just before kept
  this very map: its out_offset and shape are this layer's in_offset and input shape, `in_half` is the half it
  kept into (the other half than its own input's), and it kept it skewed exactly when this layer reads skewed
  (a CONV or pool with an even stride_w).
* `in_half` only with `resident` (loads always land in half 0); `keep_skew` only with `keep`.

Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from typing import Optional

from .bands import act_end, act_skew, kept_stride
from .config import HwConfig
from .descriptor import Descriptor, Op
from .layout import ACT_LANES, is_shared


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def half_bytes(hw: HwConfig) -> int:
    """Bytes of half an activation-buffer slice: the room of a kept map (per slice) and of a chained input."""
    return hw.act_buf_bytes // ACT_LANES // 2


def kept_end(d: Descriptor, hw: HwConfig) -> int:
    """Bytes of each slice the output of `d` takes when kept."""
    plane = d.out_h * d.out_w
    return (_ceil_div(d.out_c, ACT_LANES) - 1) * kept_stride(plane, hw) + plane


def keep_problem(d: Descriptor, hw: HwConfig) -> Optional[str]:
    """Why `d` cannot keep its output in the activation buffer (None: it can)."""
    beat = hw.axi_data_bits // 8
    if not ((d.op == Op.CONV and d.share) or d.op == Op.ADD):
        return "only a CONV with shared classes or an ADD can keep its output"
    if d.out_map_h:
        return f"keeps only a whole output map (out_map_h {d.out_map_h}: a band)"
    if (d.out_h * d.out_w) % hw.cols or d.out_offset % beat:
        return (f"needs output planes a multiple of C={hw.cols} bytes ({d.out_h}x{d.out_w}) at an offset a multiple "
                f"of {beat} ({d.out_offset})")
    half = half_bytes(hw)
    if kept_end(d, hw) > half:
        return f"kept map takes {kept_end(d, hw)} bytes of each slice, more than half a slice ({half})"
    if not d.in_half and not d.resident:
        if d.op == Op.ADD:
            used = d.in_c * d.in_h * d.in_w
        else:
            used = act_end(d, hw)
        if used > half:
            return f"its own input takes {used} bytes of half 0, more than half a slice ({half})"
    return None


def resident_problem(d: Descriptor, hw: HwConfig) -> Optional[str]:
    """Why `d` cannot read its input from the activation buffer (None: it can, given a layer before that kept
    it: `chain_problem`)."""
    if not (d.op in (Op.CONV, Op.ADD) or is_shared(d)):
        return "only a CONV, a shared pool or an ADD can read a kept input"
    if d.in_map_h:
        return f"reads only a whole kept map (in_map_h {d.in_map_h}: a band)"
    return None


def chain_problem(prev: Optional[Descriptor], d: Descriptor) -> Optional[str]:
    """Why resident `d` cannot read what the layer before it, `prev` (None: none), kept (None: it can)."""
    if prev is None or not prev.keep:
        return "the layer before does not keep its output"
    if (prev.out_offset, prev.out_c, prev.out_h, prev.out_w) != (d.in_offset, d.in_c, d.in_h, d.in_w):
        return (f"the layer before kept {prev.out_c}x{prev.out_h}x{prev.out_w} at offset {prev.out_offset}, this one "
                f"reads {d.in_c}x{d.in_h}x{d.in_w} at {d.in_offset}")
    if d.in_half == (prev.in_half and prev.resident):
        return f"in_half {int(d.in_half)} is not the half the layer before kept into"
    if prev.keep_skew != act_skew(d):
        return (f"the layer before kept the map {'skewed' if prev.keep_skew else 'unskewed'}, this one reads it "
                f"{'skewed' if act_skew(d) else 'unskewed'} (stride_w {d.stride_w})")
    return None


def problem(prev: Optional[Descriptor], d: Descriptor, hw: HwConfig) -> Optional[str]:
    """Why descriptor `d`, run after `prev` (None: first), breaks the residency rules (None: it does not)."""
    if d.in_half and not d.resident:
        return "in_half without resident"
    if d.keep_skew and not d.keep:
        return "keep_skew without keep"
    if d.keep:
        why = keep_problem(d, hw)
        if why:
            return f"keep: {why}"
    if d.resident:
        why = resident_problem(d, hw) or chain_problem(prev, d)
        if why:
            return f"resident: {why}"
    return None
