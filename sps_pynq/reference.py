"""numpy reference of the SPS core's integer arithmetic (docs/arithmetic.md), written for clarity, not speed.

It executes descriptors on an arena (a 1-D uint8 numpy array, the same bytes the hardware sees) and is the
independent check of the C golden model (`sps_pynq.native`) and of the RTL: all three must agree bit for bit.
Weights and parameters are read through `sps_pynq.hw.layout` (row groups, (i, k, row) order, 16-byte records),
and every output channel is written back to its original position o.

Board-side module: numpy only.
"""
from __future__ import annotations

from typing import List

import numpy as np

from .hw import layout
from .hw.config import HwConfig
from .hw.descriptor import PARAM_RECORD_BYTES, Descriptor, Op


def requant(v, M, S) -> np.ndarray:
    """(v * M + R) >> S in int64, R = 1 << (S - 1) if S > 0 else 0: round half up (docs/arithmetic.md)."""
    v = np.asarray(v, dtype=np.int64)
    M = np.asarray(M, dtype=np.int64)
    S = np.asarray(S, dtype=np.int64)
    R = np.where(S > 0, np.left_shift(np.int64(1), np.maximum(S - 1, 0)), np.int64(0))
    return (v * M + R) >> S        # numpy's >> on int64 is the arithmetic (flooring) shift


def _finish(y: np.ndarray, relu: bool) -> np.ndarray:
    """ReLU if asked, then saturation to int8, in that order."""
    if relu:
        y = np.maximum(y, 0)
    return np.clip(y, -128, 127).astype(np.int8)


def _wrap_int32(v: np.ndarray) -> np.ndarray:
    """The accumulators are int32 registers; the compiler guarantees no overflow, but if it happens it wraps."""
    return ((np.asarray(v, dtype=np.int64) + 2**31) % 2**32) - 2**31


def _planes(arena: np.ndarray, offset: int, c: int, h: int, w: int, stride: int) -> np.ndarray:
    """A [c][h][w] int8 view of the arena: c planes of h x w bytes, `stride` bytes apart (a band of a larger map
    when stride > h * w)."""
    n = (c - 1) * stride + h * w if c else 0
    if offset < 0 or offset + n > arena.size:
        raise ValueError(f"feature map {c}x{h}x{w} (planes {stride} bytes apart) at offset {offset} lies outside "
                         f"the arena of {arena.size} bytes")
    return np.lib.stride_tricks.as_strided(arena[offset:].view(np.int8), shape=(c, h, w), strides=(stride, w, 1),
                                           writeable=False)


def _fmap(arena: np.ndarray, offset: int, c: int, h: int, w: int, stride: int = 0) -> np.ndarray:
    return _planes(arena, offset, c, h, w, stride or h * w)


def _store(arena: np.ndarray, offset: int, out: np.ndarray, stride: int = 0) -> None:
    """Write int8 map `out` [c][h][w] at `offset`, channel planes `stride` bytes apart (0: packed)."""
    c, h, w = out.shape
    stride = stride or h * w
    n = (c - 1) * stride + h * w if c else 0
    if offset < 0 or offset + n > arena.size:
        raise ValueError(f"output {out.shape} at offset {offset} lies outside the arena of {arena.size} bytes")
    for j in range(c):
        arena[offset + j * stride:offset + j * stride + h * w] = out[j].astype(np.int8).reshape(-1).view(np.uint8)


def _windows(x: np.ndarray, d: Descriptor, fill: int) -> np.ndarray:
    """All window taps: array [C][kh*kw][out_h][out_w] with out-of-map positions set to `fill`.

    Output pixel (y, x), tap (ky, kx) reads input (y * stride_h - pad_top + ky, x * stride_w - pad_left + kx).
    """
    c, h, w = x.shape
    bottom = max(0, (d.out_h - 1) * d.stride_h - d.pad_top + d.kh - h)
    right = max(0, (d.out_w - 1) * d.stride_w - d.pad_left + d.kw - w)
    padded = np.full((c, d.pad_top + h + bottom, d.pad_left + w + right), fill, dtype=np.int64)
    padded[:, d.pad_top:d.pad_top + h, d.pad_left:d.pad_left + w] = x
    taps = np.empty((c, d.kh * d.kw, d.out_h, d.out_w), dtype=np.int64)
    for ky in range(d.kh):
        for kx in range(d.kw):
            taps[:, ky * d.kw + kx] = padded[:, ky:ky + (d.out_h - 1) * d.stride_h + 1:d.stride_h,
                                             kx:kx + (d.out_w - 1) * d.stride_w + 1:d.stride_w]
    return taps


def unpack_conv(arena: np.ndarray, d: Descriptor, hw: HwConfig):
    """Read a CONV layer's packed weights and params back into dense W[O][I][kh*kw], bias, mult, shift (int64)."""
    R = hw.rows
    P = d.patterns if d.pps else 1
    K = d.nnz
    if d.pps:
        if (d.kh, d.kw) != (3, 3) or len(d.pattern_masks) != P:
            raise ValueError(f"PPS conv needs 3x3 kernels and {P} pattern masks, got {d.kh}x{d.kw}, "
                             f"{len(d.pattern_masks)} masks")
        tap_lists = [layout.taps_of_mask(m) for m in d.pattern_masks]
        if any(len(t) != K for t in tap_lists):
            raise ValueError(f"every pattern must have K={K} taps, got {[len(t) for t in tap_lists]}")
    else:
        if K != d.kh * d.kw:
            raise ValueError(f"dense conv needs K = kh * kw = {d.kh * d.kw}, got {K}")
        tap_lists = [list(range(K))]
    O, I = d.out_c, d.in_c
    W = np.zeros((O, I, d.kh * d.kw), dtype=np.int64)
    bias = np.zeros(O, dtype=np.int64)
    mult = np.zeros(O, dtype=np.int64)
    shift = np.zeros(O, dtype=np.int64)
    wbytes = layout.group_weight_bytes(I, K, R)
    slot_shift = layout.desc_slot_shift(d)
    if slot_shift is not None and (not d.pps or layout.ACT_LANES % P or I % layout.ACT_LANES):
        raise ValueError(f"shared classes need PPS with P dividing {layout.ACT_LANES} and input channels a multiple "
                         f"of {layout.ACT_LANES}, got P={P if d.pps else 'dense'}, I={I}")
    chans = np.arange(I)
    for g, grp in enumerate(layout.row_groups(O, P, R, slot_shift)):
        start = d.weight_offset + g * wbytes
        block = arena[start:start + I * K * R].view(np.int8).reshape(I, K, R)
        pstart = d.param_offset + g * R * PARAM_RECORD_BYTES
        records = arena[pstart:pstart + R * PARAM_RECORD_BYTES].view("<i4").reshape(R, 4)
        if block.shape != (I, K, R) or records.shape != (R, 4):
            raise ValueError(f"row group {g} of the conv lies outside the arena of {arena.size} bytes")
        for row, o in enumerate(grp.filters):
            if o < 0:                       # an idle row of a shared group
                continue
            if slot_shift is not None:      # step i of slot d reads channel c_d(i) (layout.py, "Shared classes")
                chans = np.array([layout.shared_channel(i, row >> slot_shift) for i in range(I)])
            taps = np.array([tap_lists[(o + c) % P] for c in chans], dtype=np.int64)   # [I][K]
            W[o, chans[:, None], taps] = block[:, :, row]
            bias[o], mult[o], shift[o] = records[row, 0], records[row, 1], records[row, 2]
    return W, bias, mult, shift


def _conv(arena, d: Descriptor, hw: HwConfig) -> np.ndarray:
    x = _fmap(arena, d.in_offset, d.in_c, d.in_h, d.in_w, d.in_chan_stride)
    W, bias, mult, shift = unpack_conv(arena, d, hw)
    taps = _windows(x, d, 0).reshape(d.in_c * d.kh * d.kw, d.out_h * d.out_w)
    # float64 matmul is exact here: every product and partial sum is an integer far below 2^53.
    acc = (W.reshape(d.out_c, -1).astype(np.float64) @ taps.astype(np.float64)).astype(np.int64)
    acc = _wrap_int32(acc + bias[:, None])
    y = requant(acc, mult[:, None], shift[:, None])
    return _finish(y, d.relu).reshape(d.out_c, d.out_h, d.out_w)


def _maxpool(arena, d: Descriptor) -> np.ndarray:
    x = _fmap(arena, d.in_offset, d.in_c, d.in_h, d.in_w, d.in_chan_stride)
    sentinel = -(1 << 40)
    m = _windows(x, d, sentinel).max(axis=1)
    if np.any(m == sentinel):
        raise ValueError("maxpool window with no in-bounds position (a compiler error)")
    return _finish(m, d.relu)


def _avgpool(arena, d: Descriptor) -> np.ndarray:
    x = _fmap(arena, d.in_offset, d.in_c, d.in_h, d.in_w, d.in_chan_stride)
    acc = _wrap_int32(_windows(x, d, 0).sum(axis=1))
    return _finish(requant(acc, d.mult, d.shift), d.relu)


def _add(arena, d: Descriptor) -> np.ndarray:
    if d.in_map_h or d.out_map_h:
        raise ValueError(f"ADD reads and writes whole maps: in_map_h {d.in_map_h} / out_map_h {d.out_map_h} must be 0")
    a = _fmap(arena, d.in_offset, d.in_c, d.in_h, d.in_w).astype(np.int64)
    b = _fmap(arena, d.in2_offset, d.in_c, d.in_h, d.in_w).astype(np.int64)
    S = np.int64(d.shift)
    R = np.int64(1) << (S - 1) if S > 0 else np.int64(0)
    y = (a * np.int64(d.mult) + b * np.int64(d.mult2) + R) >> S
    return _finish(y, d.relu)


def run_layer(arena: np.ndarray, desc: Descriptor, hw: HwConfig) -> None:
    """Execute one descriptor on the arena in place."""
    if arena.dtype != np.uint8 or arena.ndim != 1:
        raise ValueError(f"the arena must be a 1-D uint8 array, got {arena.dtype} {arena.shape}")
    if desc.op == Op.CONV:
        out = _conv(arena, desc, hw)
    elif desc.op == Op.MAXPOOL:
        out = _maxpool(arena, desc)
    elif desc.op == Op.AVGPOOL:
        out = _avgpool(arena, desc)
    elif desc.op == Op.ADD:
        out = _add(arena, desc)
    else:
        raise ValueError(f"unknown op {desc.op}")
    _store(arena, desc.out_offset, out, desc.out_chan_stride)


def run_program(arena: np.ndarray, descs: List[Descriptor], hw: HwConfig) -> None:
    """Execute descriptors in order on the arena in place."""
    for d in descs:
        run_layer(arena, d, hw)
