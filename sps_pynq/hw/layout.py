"""How a CONV layer's weights and per-channel parameters are laid out in the arena.

Filters are computed R at a time (R = rows of the array). In PPS mode filter o belongs to residue class
r = o mod P; filters of one class use the same pattern for every input channel i (pattern (r + i) mod P), so
they need the same activations in the same order and share the array. Row groups are enumerated class by class:

    for r in 0..P-1:                      (dense mode: P = 1, one class with every filter)
        filters of class r: o = r, r + P, r + 2P, ... < O      (n_r of them)
        for g in 0..ceil(n_r / R)-1:      row group g holds filters o = r + P * (g * R + row), row < R

A row group's weights are one block of I * K * R int8 bytes in (input channel i, nonzero k, row) order, padded
with zeros to a multiple of GROUP_ALIGN bytes: each cycle the array consumes the R bytes of one (i, k).
Tap k of kernel (o, i) is the k-th set bit of its pattern mask (taps t = ky * kw + kx in increasing order); in
dense mode it is tap k itself. Idle rows (a class with fewer than R filters left) hold zero weights.

A row group's parameters are R records of PARAM_RECORD_BYTES: bias (int32), multiplier (int32), shift (int32),
zero; idle rows are all zero. Outputs are written back to their original channel o, so the next layer sees the
usual channel order and no permutation is stored anywhere.

Shared classes (descriptor `share`, FORMAT_VERSION 3). When a class has few filters, S classes share one row
group: slot d (rows d * n .. d * n + n - 1, n = 2^slot_shift) holds the filters of class g * S + d, S =
min(P, R / n), ceil(min(P, O) / S) groups (those with a filter). Pattern (o + i) mod P is the same for class
r + d at channel i - d as for class r
at channel i, so at step (i, k) slot d reads channel c_d(i) = L * (i div L) + ((i - d) mod L) (L = ACT_LANES,
P divides L): the same taps for every row, the channels of slot d a rotation of those of slot 0 within each
block of L. The core reads the L channels of a block at one pixel in one activation-buffer access (its L slices,
docs/hardware.md). Row d * n + j of group g is filter o = g * S + d + P * j (idle when o >= O, and rows from S * n
on); its weight at (i, k) is tap k of kernel (o, c_d(i)). `share_problem` lists what such a layer needs.

Torch- and onnx-free: this module runs on the board (it is also what tests use to build layers by hand).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List

import numpy as np

from .descriptor import PARAM_RECORD_BYTES, Op, align

GROUP_ALIGN = 16
# Slices of the activation buffer: one read returns the same position of ACT_LANES channel planes (shared classes).
ACT_LANES = 8


@dataclass(frozen=True)
class RowGroup:
    residue: int          # r: the class (o mod P)
    index: int            # g: the group number within its class
    filters: tuple        # original output channels of rows 0..len-1 (len <= R; -1: an idle row of a shared group)
    slot_shift: "int | None" = None   # shared classes: row r reads the channels of slot r >> slot_shift


def share_slots(patterns: int, rows: int, slot_shift: int) -> int:
    """S: the residue classes one shared row group holds (slots of 2^slot_shift rows)."""
    return max(1, min(patterns, rows >> slot_shift))


def shared_channel(i: int, slot: int) -> int:
    """c_d(i): the input channel slot `slot` of a shared group reads at step channel i."""
    return ACT_LANES * (i // ACT_LANES) + (i % ACT_LANES - slot) % ACT_LANES


def row_groups(out_c: int, patterns: int, rows: int, slot_shift: "int | None" = None) -> List[RowGroup]:
    """The row groups of a layer with `out_c` filters, in the order the hardware runs and stores them
    (`slot_shift`: shared classes, see the module doc)."""
    groups = []
    if slot_shift is not None:
        n, S = 1 << slot_shift, share_slots(patterns, rows, slot_shift)
        for g in range(min(patterns, out_c) // S + (min(patterns, out_c) % S > 0)):   # groups with a filter
            filters = [o if o < out_c else -1
                       for d in range(S) for o in (g * S + d + patterns * j for j in range(n))]
            groups.append(RowGroup(g * S, 0, tuple(filters), slot_shift))
        return groups
    for r in range(patterns):
        members = list(range(r, out_c, patterns))
        for g in range(0, len(members), rows):
            groups.append(RowGroup(r, g // rows, tuple(members[g:g + rows])))
    return groups


def taps_of_mask(mask: int) -> List[int]:
    """Tap numbers (ky * 3 + kx) set in a 9-bit pattern mask, in increasing order."""
    return [t for t in range(9) if mask >> t & 1]


def group_weight_bytes(in_c: int, nnz: int, rows: int) -> int:
    return align(in_c * nnz * rows, GROUP_ALIGN)


def pack_weights(w: np.ndarray, rows: int, pattern_masks: "List[int] | None" = None,
                 slot_shift: "int | None" = None) -> bytes:
    """Pack int8 weights W[O][I][kh][kw] into row-group blocks.

    With `pattern_masks` (PPS mode, 3x3 only), kernel (o, i) must be zero outside pattern (o + i) mod P; only
    its K nonzero positions are stored. Without, every tap is stored (dense mode). `slot_shift`: shared classes.
    """
    w = np.asarray(w)
    if w.dtype != np.int8 or w.ndim != 4:
        raise ValueError(f"pack_weights wants int8 W[O][I][kh][kw], got {w.dtype} {w.shape}")
    out_c, in_c, kh, kw = w.shape
    flat = w.reshape(out_c, in_c, kh * kw)
    if pattern_masks:
        if (kh, kw) != (3, 3):
            raise ValueError(f"PPS packing needs 3x3 kernels, got {kh}x{kw}")
        P = len(pattern_masks)
        tap_lists = [taps_of_mask(m) for m in pattern_masks]
        nnz = len(tap_lists[0])
        if any(len(t) != nnz for t in tap_lists):
            raise ValueError(f"every pattern needs the same number of taps, got {[len(t) for t in tap_lists]}")
    else:
        P, nnz = 1, kh * kw
        tap_lists = [list(range(kh * kw))]
    # Vectorized (a per-kernel Python loop took over a minute for VGG16): tap k of kernel (o, i) is
    # tap_lists[(o + i) % P][k]; gather every kernel's stored taps at once, then cut the row groups.
    residue = (np.arange(out_c)[:, None] + np.arange(in_c)[None, :]) % P          # (O, I)
    taps = np.asarray(tap_lists, dtype=np.intp)                                    # (P, K)
    if pattern_masks:
        allowed = np.zeros((P, kh * kw), dtype=bool)
        allowed[np.arange(P)[:, None], taps] = True
        outside = (flat != 0) & ~allowed[residue]                                  # (O, I, 9)
        if outside.any():
            bad = np.argwhere(outside.any(axis=2))
            o, i = min(((int(o), int(i)) for o, i in bad), key=lambda oi: (oi[0] % P, oi[0], oi[1]))
            raise ValueError(f"kernel (o={o}, i={i}) has nonzeros outside pattern {(o + i) % P}")
    stored = np.take_along_axis(flat, taps[residue], axis=2)                      # (O, I, K)
    blocks = []
    size = group_weight_bytes(in_c, nnz, rows)
    if slot_shift is not None and (not pattern_masks or ACT_LANES % P or in_c % ACT_LANES):
        raise ValueError(f"shared classes need PPS with P dividing {ACT_LANES} and input channels a multiple of "
                         f"{ACT_LANES}, got P={P}, I={in_c}")
    for grp in row_groups(out_c, P, rows, slot_shift):
        block = np.zeros((in_c, nnz, rows), dtype=np.int8)
        if slot_shift is None:
            block[:, :, :len(grp.filters)] = stored[list(grp.filters)].transpose(1, 2, 0)
        else:
            for row, o in enumerate(grp.filters):
                if o >= 0:
                    chans = [shared_channel(i, row >> slot_shift) for i in range(in_c)]
                    block[:, :, row] = stored[o, chans]
        raw = block.tobytes()
        blocks.append(raw + bytes(size - len(raw)))
    return b"".join(blocks)


def pack_params(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, rows: int, patterns: int,
                slot_shift: "int | None" = None) -> bytes:
    """Pack per-output-channel bias (int32), requant multiplier (0..2^31-1) and shift (0..63) by row group."""
    bias = np.asarray(bias, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    out_c = bias.shape[0]
    if mult.shape != (out_c,) or shift.shape != (out_c,):
        raise ValueError(f"bias/mult/shift must all have shape ({out_c},), got {bias.shape} {mult.shape} {shift.shape}")
    if np.any(mult < 0) or np.any(mult >= 2**31) or np.any(shift < 0) or np.any(shift > 63):
        raise ValueError("multipliers must be in 0..2^31-1 and shifts in 0..63")
    if np.any(bias < -2**31) or np.any(bias >= 2**31):
        raise ValueError("biases must fit in int32")
    out = []
    for grp in row_groups(out_c, patterns, rows, slot_shift):
        rec = np.zeros((rows, PARAM_RECORD_BYTES // 4), dtype="<i4")
        for row, o in enumerate(grp.filters):
            if o >= 0:
                rec[row, 0:3] = (bias[o], mult[o], shift[o])
        out.append(rec.tobytes())
    return b"".join(out)


def weight_bytes(out_c: int, in_c: int, nnz: int, patterns: int, rows: int, slot_shift: "int | None" = None) -> int:
    return len(row_groups(out_c, patterns, rows, slot_shift)) * group_weight_bytes(in_c, nnz, rows)


def param_bytes(out_c: int, patterns: int, rows: int, slot_shift: "int | None" = None) -> int:
    return len(row_groups(out_c, patterns, rows, slot_shift)) * rows * PARAM_RECORD_BYTES


def ideal_conv_cycles(out_c: int, in_c: int, nnz: int, patterns: int, out_pixels: int, rows: int, cols: int,
                      slot_shift: "int | None" = None) -> int:
    """Cycles of a CONV on an R x C array that never idles: one (input channel, tap) step per cycle, I*K steps
    per row group and tile of C output pixels (golden.c's ideal_mac_cycles counts the same). Dense: patterns=1."""
    tiles = -(-out_pixels // cols)
    return len(row_groups(out_c, patterns, rows, slot_shift)) * tiles * in_c * nnz


def desc_slot_shift(d) -> "int | None":
    """The slot_shift of descriptor `d` when its classes share row groups, else None."""
    return d.slot_shift if d.share else None


def is_shared(d) -> bool:
    """True when descriptor `d` runs shared: a CONV whose classes share row groups or a pool whose channels do
    (its input then lands in the activation buffer's ACT_LANES slices); ADD ignores the bit."""
    return bool(d.share) and d.op in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL)


def shared_pool_channels(rows: int) -> int:
    """Channels a row group of a shared pool takes: one a row, one a slice."""
    return min(rows, ACT_LANES)


def class_slot_shift(out_c: int, patterns: int) -> int:
    """The smallest slot_shift whose slot holds a residue class: ceil(log2(ceil(O / P)))."""
    return max(0, (-(-out_c // patterns) - 1).bit_length())


def share_problem(d, hw) -> "str | None":
    """Why CONV descriptor `d` cannot share classes on `hw` (None: it can). The core, the golden model and the
    compiler apply the same rules: PPS with P dividing ACT_LANES, I a multiple of ACT_LANES, stride 1 with
    out_w == in_w (a tile's columns read consecutive bytes), DDR channel planes a whole number of AXI beats
    apart, and every class within one slot (ceil(O / P) <= 2^slot_shift <= R).

    MAXPOOL / AVGPOOL with `share` (shared pools: a group of min(R, ACT_LANES) channels, row r reading slice r
    of a block) need the DDR planes a whole number of beats apart and the columns reading consecutive bytes:
    stride 1 with out_w == in_w, or a single output pixel (a global pool)."""
    beat = hw.axi_data_bits // 8
    if d.op in (Op.MAXPOOL, Op.AVGPOOL):
        if d.in_chan_stride % beat:
            return f"needs input channel planes a multiple of {beat} bytes apart ({d.in_chan_stride})"
        if not (((d.stride_h, d.stride_w) == (1, 1) and d.out_w == d.in_w) or d.out_h * d.out_w == 1):
            return (f"needs stride 1 and out_w == in_w, or one output pixel (stride {d.stride_h}x{d.stride_w}, "
                    f"{d.in_h}x{d.in_w} -> {d.out_h}x{d.out_w})")
        return None
    if not d.pps or d.patterns < 1 or ACT_LANES % d.patterns:
        return f"needs PPS with P dividing {ACT_LANES} (P={d.patterns if d.pps else 'dense'})"
    if d.in_c % ACT_LANES:
        return f"needs input channels a multiple of {ACT_LANES} (I={d.in_c})"
    if (d.stride_h, d.stride_w) != (1, 1) or d.out_w != d.in_w:
        return f"needs stride 1 and out_w == in_w (stride {d.stride_h}x{d.stride_w}, width {d.in_w} -> {d.out_w})"
    if d.in_chan_stride % beat:
        return f"needs input channel planes a multiple of {beat} bytes apart ({d.in_chan_stride})"
    n = 1 << d.slot_shift
    if n > hw.rows or -(-d.out_c // d.patterns) > n:
        return f"slot of {n} rows cannot hold a class of {-(-d.out_c // d.patterns)} filters on {hw.rows} rows"
    return None


def share_slot_shift(d, hw) -> "int | None":
    """The slot_shift with which PPS CONV `d`'s classes can share row groups on `hw`: the smallest slot that holds
    a class, when a group then holds S >= 2 classes and `d` shared keeps the rules (share_problem); else None."""
    if not d.pps:
        return None
    slot_shift = class_slot_shift(d.out_c, d.patterns)
    if (1 << slot_shift) > hw.rows or share_slots(d.patterns, hw.rows, slot_shift) < 2:
        return None
    shared = dataclasses.replace(d, share=True, slot_shift=slot_shift)
    return None if share_problem(shared, hw) else slot_shift
