"""How a layer's input lands in the activation buffer, and how a layer too large for it is cut into bands.

The core loads a CONV's or pool's whole input (in_c planes of in_h x in_w bytes) into the activation buffer
before it computes. A map too large for the buffer runs as several descriptors, each a *band*: a smaller layer
over some output rows (all channels), reading just the input rows those need (the halo the kernel, stride and
padding imply) from the whole map in DDR. The descriptor says where the band sits in the whole map:
`in_map_h` / `out_map_h` are the whole maps' heights, so channel planes in DDR are `in_map_h * in_w` bytes apart
while a band reads only `in_h` rows of each. Pools can also be cut by channels (no halo at all).

The load, per `act_load` below (the RTL, the C golden model and this module compute the same numbers):
- a whole map (planes contiguous in DDR) is one read request from the beat below `in_offset`; it lands at buffer
  offset 0, so input byte 0 sits at `lead = in_offset mod beat` and plane c at `lead + c * in_h * in_w`;
- a band is one request per channel, each from the beat below its first byte; plane c lands at
  `lead + c * chan_stride`, where chan_stride >= in_h * in_w + beat - 1 and chan_stride = DDR plane stride
  (mod beat), so every request starts on a beat boundary of the buffer and no request overwrites the data of
  the channel before it.
The buffer holds the layer when `end = roundup(lead + (in_c - 1) * chan_stride + in_h * in_w, beat)` fits.
A CONV with shared classes (layout.py), or a shared pool, loads one request per plane as a band does (and a
resident layer finds its input kept in the same layout, hw/residency.py); the
buffer is then ACT_LANES slices of act_buf_bytes / ACT_LANES bytes, channel c in slice c mod ACT_LANES at
`lead + (c div ACT_LANES) * chan_stride`: it fits when
`end = roundup(lead + (ceil(in_c / ACT_LANES) - 1) * chan_stride + in_h * in_w, beat)` fits one slice.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List

from .config import HwConfig
from .descriptor import Descriptor, Op
from .layout import ACT_LANES, is_shared


@dataclass(frozen=True)
class ActLoad:
    lead: int             # buffer offset of the first input byte (in_offset mod beat)
    chan_stride: int      # buffer bytes between channel planes
    requests: int         # AXI read requests: 1 for a whole map, in_c for a band
    beats: int            # beats read in all (whole beats: up to beat - 1 bytes more on each side of a plane)
    end: int              # buffer bytes in use (a multiple of the beat): must be <= act_buf_bytes / slices
    slices: int = 1       # ACT_LANES for a CONV with shared classes (`end` is then the fullest slice's)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def act_skew(d: Descriptor) -> bool:
    """True when layer `d` uses the skewed activation-bank mapping (sps_desc_decode's act_skew): CONV and pools
    with an even horizontal stride. Stride 1 and odd strides keep the plain one (the skew would make unaligned
    runs of consecutive addresses collide), and so does ADD."""
    return d.op != Op.ADD and d.stride_w % 2 == 0


def in_lanes(d: Descriptor) -> bool:
    """True when the input of `d` sits in the shared layout (channel c in slice c mod ACT_LANES): a CONV with
    shared classes or a shared pool, whose load puts it there, and a resident layer, kept so (hw/residency.py)."""
    return is_shared(d) or d.resident


def kept_stride(plane: int, hw: HwConfig) -> int:
    """Buffer bytes between the planes of a kept map within a slice (hw/residency.py): planes of a multiple of C
    bytes rounded up to whole AXI beats and whole buffer rows, so every kept row is one buffer row."""
    align = max(hw.cols, hw.axi_data_bits // 8)
    return _ceil_div(plane, align) * align


def _buffer_stride(d: Descriptor, hw: HwConfig) -> int:
    """Buffer bytes between the input's planes: a whole map's are contiguous; one read per plane (a band, or the
    shared layout) needs stride >= plane + beat - 1 with stride = the DDR plane stride (mod beat); a resident
    input lies as it was kept."""
    beat = hw.axi_data_bits // 8
    plane = d.in_h * d.in_w
    if d.resident:
        return kept_stride(plane, hw)
    if d.in_chan_stride == plane and not in_lanes(d):
        return plane
    stride = plane + beat - 1
    return stride + (d.in_chan_stride - stride) % beat


def act_end(d: Descriptor, hw: HwConfig) -> int:
    """ActLoad.end in closed form: the buffer bytes the input of `d` takes (shared layout: of the fullest slice)."""
    beat = hw.axi_data_bits // 8
    planes = _ceil_div(d.in_c, ACT_LANES) if in_lanes(d) else d.in_c
    end = d.in_offset % beat + (planes - 1) * _buffer_stride(d, hw) + d.in_h * d.in_w
    return _ceil_div(end, beat) * beat


def act_load(d: Descriptor, hw: HwConfig) -> ActLoad:
    """How the input of CONV / MAXPOOL / AVGPOOL layer `d` lands in the activation buffer."""
    beat = hw.axi_data_bits // 8
    plane = d.in_h * d.in_w
    ddr_stride = d.in_chan_stride
    lead = d.in_offset % beat
    stride = _buffer_stride(d, hw)
    lanes = in_lanes(d)
    if stride == plane and not lanes:             # the whole map: one contiguous read
        beats = _ceil_div(lead + d.in_c * plane, beat)
        return ActLoad(lead, plane, 1, beats, act_end(d, hw))
    beats = sum(_ceil_div((d.in_offset + c * ddr_stride) % beat + plane, beat) for c in range(d.in_c))
    return ActLoad(lead, stride, d.in_c, beats, act_end(d, hw), ACT_LANES if lanes else 1)


def fits(d: Descriptor, hw: HwConfig) -> bool:
    """True when the input of `d` (CONV or pool) fits the activation buffer."""
    al = act_load(d, hw)
    return al.end <= hw.act_buf_bytes // al.slices


def row_band(d: Descriptor, y0: int, y1: int) -> Descriptor:
    """The band of whole-map layer `d` (CONV or pool, in_map_h = out_map_h = 0) that computes output rows
    [y0, y1): it reads input rows [lo, hi) with lo = max(0, y0 * stride - pad_top) and hi the last row a
    window of row y1 - 1 touches, clipped to the map; rows outside [lo, hi) are padding or not needed."""
    lo = max(0, y0 * d.stride_h - d.pad_top)
    hi = min(d.in_h, (y1 - 1) * d.stride_h - d.pad_top + d.kh)
    pad_top = lo - (y0 * d.stride_h - d.pad_top)          # > 0 only in the first band
    pad_bottom = max(0, (y1 - 1 - y0) * d.stride_h - pad_top + d.kh - (hi - lo))
    return dataclasses.replace(
        d, in_offset=d.in_offset + lo * d.in_w, in_h=hi - lo, in_map_h=d.in_h,
        out_offset=d.out_offset + y0 * d.out_w, out_h=y1 - y0, out_map_h=d.out_h,
        pad_top=pad_top, pad_bottom=pad_bottom)


def channel_band(d: Descriptor, c0: int, c1: int) -> Descriptor:
    """The part of whole-map pool `d` over channels [c0, c1): a smaller pool at shifted offsets."""
    assert d.op in (Op.MAXPOOL, Op.AVGPOOL)
    return dataclasses.replace(d, in_offset=d.in_offset + c0 * d.in_h * d.in_w, in_c=c1 - c0,
                               out_offset=d.out_offset + c0 * d.out_h * d.out_w, out_c=c1 - c0)


def _even_splits(n: int, parts: int) -> List[int]:
    """Boundaries of `parts` nearly equal pieces of range(n), larger pieces first."""
    q, r = divmod(n, parts)
    bounds, at = [0], 0
    for j in range(parts):
        at += q + (1 if j < r else 0)
        bounds.append(at)
    return bounds


def max_band_rows(d: Descriptor, hw: HwConfig) -> int:
    """The most output rows one band of `d` can compute within the activation buffer (0: not even one)."""
    best, lo, hi = 0, 1, d.out_h
    while lo <= hi:                               # the footprint grows with the rows: bisect
        mid = (lo + hi) // 2
        if all(fits(row_band(d, y0, min(y0 + mid, d.out_h)), hw) for y0 in range(0, d.out_h, mid)):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def split_rows(d: Descriptor, hw: HwConfig) -> List[Descriptor]:
    """`d` as the fewest row bands that each fit the activation buffer ([] when one output row does not fit),
    with the rows spread evenly over the bands."""
    rows = max_band_rows(d, hw)
    if rows == 0:
        return []
    parts = _ceil_div(d.out_h, rows)
    while True:                                   # even bands may be one row longer than `rows`: recheck
        b = _even_splits(d.out_h, parts)
        bands = [row_band(d, b[j], b[j + 1]) for j in range(parts)]
        if all(fits(x, hw) for x in bands):
            return bands
        parts += 1


def split_channels(d: Descriptor, hw: HwConfig) -> List[Descriptor]:
    """Pool `d` as the fewest channel bands that each fit the buffer ([] when one channel does not fit)."""
    per = 0
    while per < d.in_c and fits(channel_band(d, 0, per + 1), hw):
        per += 1
    if per == 0:
        return []
    parts = _ceil_div(d.in_c, per)
    b = _even_splits(d.in_c, parts)
    return [channel_band(d, b[j], b[j + 1]) for j in range(parts)]


class CannotBand(ValueError):
    """Not even one output row (or one channel, for a pool) of the layer fits the activation buffer."""


def plan(d: Descriptor, hw: HwConfig) -> List[Descriptor]:
    """Whole-map layer `d` as the descriptors the core runs: [d] when its input fits the activation buffer (and
    for ADD, which streams), else its bands: channels for a pool when one channel fits (no halo), else rows.
    Raises CannotBand with the numbers when no band fits."""
    if d.op == Op.ADD or fits(d, hw):
        return [d]
    parts = split_channels(d, hw) if d.op != Op.CONV else []
    parts = parts or split_rows(d, hw)
    if parts:
        return parts
    one = row_band(d, 0, 1)
    need = act_load(dataclasses.replace(one, in_map_h=one.in_h + 1), hw).end
    raise CannotBand(f"even one output row needs {one.in_h} input rows of {d.in_c} x {d.in_w} bytes "
                     f"({need} bytes with each channel's rows on their own beats), more than the "
                     f"{hw.act_buf_bytes}-byte activation buffer")
