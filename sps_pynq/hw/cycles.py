"""Modelled clock cycles of the SPS core per layer: what the RTL does, counted instead of simulated.

The model follows the core's structure (hw_src/rtl: sps_sequencer, sps_load, sps_conv_loop, sps_conv_pipe,
sps_conv_drain, sps_add):

* control: descriptor fetch (one read of DESC_BYTES), decode/derive/check, the layer's end;
* input load (CONV, pools): one read latency, then `bands.act_load`'s beats (ActSubs = beat / C buffer rows a
  beat): a band's later planes are requested while the one before arrives, so their latency is hidden;
* CONV, per row group (`layout.row_groups`): the first group's weights and parameters are loaded before it runs;
  a later group's are prefetched while the previous group computes when a group fits half the weight buffer
  (the RTL's `dbuf`), else loaded in between; a group's compute is its tiles of C output pixels, each tile one
  issue cycle per (i, k) step *times the step's bank multiplicity* (columns whose activation bytes fall in
  the same bank of the C-banked buffer are served two a bank and cycle, the rest in the cycles after:
  `tap_multiplicity`, exact; the bank of a byte is `act_bank`, skewed for even strides), and a tile
  cannot finish before the drain has written the previous tile's R rows;
* CONV with shared classes (layout.py): ceil(min(P, O) / S) row groups; each step reads its ACT_LANES channels from the
  buffer's slices in one access, so a tile is exactly I * K issue cycles (no bank conflicts); the input is
  loaded one request per plane (`bands.act_load`), later planes requested ahead as for a band;
* pools: one channel at a time, kh*kw steps per tile, the same bank rule; shared pools (`share`) min(R, ACT_LANES)
  channels at a time from the slices, one cycle per step;
* ADD: chunks of half the activation buffer: input 1 loaded, then input 2 streamed past it, one buffer row a cycle
  as its bytes arrive (pipelined; a row whose segment is wider than a beat takes a cycle per beat).
* a `resident` layer (hw/residency.py) loads no input (ADD: no input 1); `keep` costs no cycle (the kept rows
  go into the buffer's second port as they leave the requantizers).

The MAC-issue cycles (`mac`) are exact: they equal the core's MAC counter on every layer measured. The other
parts use constants fitted to the RTL running against the `rtl` backend's testbench memory (cocotbext-axi's
AxiRam answers a read in a few cycles); `Memory` states the DDR behind the core, and ZCU104_DDR is an assumed
read latency for the board, not a measurement. How well the model follows the RTL, per layer, is printed by
`scripts/cycle_report.py` and written in docs/hardware.md.

Torch- and onnx-free (runs on the board).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from . import layout
from .bands import act_load, act_skew
from .config import HwConfig
from .descriptor import DESC_BYTES, PARAM_RECORD_BYTES, Descriptor, Op


@dataclass(frozen=True)
class Memory:
    """The DDR as the core's AXI master sees it, in core clock cycles."""
    name: str
    read_latency: float      # from a read request to its first beat


# Fitted with the core's constants below to the rtl backend's testbench (cocotbext-axi AxiRam, no back-pressure).
TESTBENCH = Memory("rtl backend testbench (cocotbext-axi AxiRam)", read_latency=0.8)
# Assumed, not measured: Zynq UltraScale+ PS DDR4 through an HP port reads in roughly 100-200 ns; 30 cycles at
# 150 MHz (200 ns) is the pessimistic end. Replace with a measurement on a board (sps-pynq energy prints cycles).
ZCU104_DDR = Memory("ZCU104 PS DDR4 via S_AXI_HP (assumed 200 ns at 150 MHz)", read_latency=30.0)


@dataclass(frozen=True)
class CoreTiming:
    """Cycles the core spends around its loads and MACs (fitted to the RTL; see the module text)."""
    layer: float = 5.9            # fetch handshakes, decode, derive, check, layer end
    request: float = 1.85         # a read request's handshakes besides the memory's latency
    group_gap: float = 8.8        # end of a row group's last tile to the next group's first issue
    tile_row: float = 0.93        # drain cycles per output row of a tile (one segment a cycle)
    tile_drain: float = 5.3       # drain cycles per tile besides its rows (requantizer stages, FIFO)
    pool_channel: float = 5.8     # pools: per channel besides its tiles
    add_chunk: float = 11.8       # ADD: per chunk besides input 1's load and input 2's stream (fill and drain)
    add_row: float = 1.0          # ADD: per buffer row (C elements) of a chunk and write beat of its segment


CORE = CoreTiming()


@dataclass
class LayerCycles:
    """Modelled cycles of one descriptor."""
    total: int                                    # START of the layer (descriptor fetch) to its last write
    mac: int                                      # cycles the PE array accumulates (exact)
    load: int                                     # cycles spent on loads the compute does not hide
    parts: Dict[str, int] = field(default_factory=dict)    # control, act_load, weights, compute, ...
    groups: int = 0                               # CONV row groups (pools: channels)
    tiles: int = 0                                # tiles of C output pixels per group


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


ACT_READ_PORTS = 2        # reads per activation bank and cycle (sps_load's banks: a read/write port and a read port)


def act_bank(addr: np.ndarray, cols: int, skew: bool) -> np.ndarray:
    """The bank of activation-buffer byte `addr` (row addr // C in every mapping): plain, addr mod C; skewed,
    the same with bit 0 flipped in odd rows (an odd row holds its byte pairs swapped). Under the skew an even
    byte 2u lies in bank 2 (u mod C/2) + (u div C/2) mod 2, a bijection of u mod C, and an odd byte 2u + 1 in
    that bank with bit 0 flipped: the C addresses a0 + 2c, c = 0..C-1, fall in C distinct banks for every a0."""
    bank = addr % cols
    return bank ^ ((addr // cols) & 1) if skew else bank


def tap_multiplicity(d: Descriptor, hw: HwConfig, base: int = 0) -> np.ndarray:
    """[tiles, kh*kw] issue cycles of one (i, k) step on each tile, for the input plane at buffer byte `base`:
    with m the most columns of the tile whose input byte for tap k lies in one activation bank (`act_bank`),
    ceil(m / ACT_READ_PORTS), at least 1 (a step with no valid column still takes its cycle).
    Independent of `base`, so of the channel i and of a band's lead: under the plain mapping an offset moves
    every column's bank alike; under the skew (even strides) a step's bytes all have one parity, and by the
    bijection of `act_bank` an offset of 2q turns their banks' u by q, an offset of 1 flips bit 0 of each."""
    C = hw.cols
    skew = act_skew(d)
    pixels = d.out_h * d.out_w
    tiles = _ceil_div(pixels, C)
    p = np.arange(pixels)
    y, x = p // d.out_w, p % d.out_w
    tile = p // C
    out = np.empty((tiles, d.kh * d.kw), dtype=np.int64)
    for ky in range(d.kh):
        iy = y * d.stride_h - d.pad_top + ky
        for kx in range(d.kw):
            ix = x * d.stride_w - d.pad_left + kx
            valid = (iy >= 0) & (iy < d.in_h) & (ix >= 0) & (ix < d.in_w)
            bank = act_bank(base + iy * d.in_w + ix, C, skew)
            counts = np.bincount(tile[valid] * C + bank[valid], minlength=tiles * C).reshape(tiles, C)
            out[:, ky * d.kw + kx] = np.maximum(_ceil_div(counts.max(axis=1), ACT_READ_PORTS), 1)
    return out


def _tile_issue(d: Descriptor, mult: np.ndarray) -> List[np.ndarray]:
    """Per residue class r: issue cycles of each tile of a row group of class r (sum over its (i, k) steps)."""
    if not (d.op == Op.CONV and d.pps):
        return [mult.sum(axis=1) * (d.in_c if d.op == Op.CONV else 1)]
    P = d.patterns
    per_pattern = np.stack([mult[:, layout.taps_of_mask(m)].sum(axis=1) for m in d.pattern_masks], axis=1)
    out = []
    for r in range(P):
        chans = np.bincount((r + np.arange(d.in_c)) % P, minlength=P)     # channels i with pattern (r + i) mod P
        out.append(per_pattern @ chans)
    return out


def _segment_beats(hw: HwConfig, nbytes: int = 0) -> int:
    """Write beats of one output segment of C bytes (or of `nbytes` < C: a map of fewer pixels than C): one, or
    C / beat when C is wider than a beat."""
    n = min(nbytes, hw.cols) if nbytes else hw.cols
    return max(1, _ceil_div(n * 8, hw.axi_data_bits))


def _compute(issue: np.ndarray, rows: int, d: Descriptor, hw: HwConfig, core: CoreTiming) -> float:
    """A row group's tiles. A tile's last step waits for the drain of the tile before it. Before a tile starts,
    the tile engine moves each column's output coordinate on by C pixels, one output row (out_w) a cycle
    (sps_conv_pipe's renormalization): C - 1 pixels before the first tile, up to C + out_w - 1 per later tile,
    hidden behind the tile before unless that is shorter."""
    drain = rows * core.tile_row * _segment_beats(hw, d.out_h * d.out_w) + core.tile_drain   # a row: a segment
    first = (hw.cols - 1) // d.out_w
    period = max(drain, (hw.cols + d.out_w - 1) // d.out_w)
    return float(first + issue[0] + np.maximum(issue[1:], period).sum() + drain)


def _read(beats: int, mem: Memory, core: CoreTiming, subs: int = 1) -> float:
    return mem.read_latency + core.request + beats * subs


def layer_cycles(d: Descriptor, hw: HwConfig, mem: Memory = TESTBENCH, core: CoreTiming = CORE) -> LayerCycles:
    """Modelled cycles of descriptor `d` on the core `hw`, with the DDR `mem`."""
    beat = hw.axi_data_bits // 8
    act_subs, wgt_subs = max(1, beat // hw.cols), max(1, beat // hw.rows)
    parts: Dict[str, float] = {"control": core.layer + _read(DESC_BYTES // beat, mem, core)}
    mac = 0
    groups = tiles = 0
    if d.op == Op.ADD:
        total = d.in_c * d.in_h * d.in_w
        half = hw.act_buf_bytes // 2
        loads = add = 0.0
        for start in range(0, total, half):
            n = min(half, total - start)
            beats = _ceil_div(n, beat)
            if not d.resident:                                         # input 1 into the buffer
                loads += _read(beats, mem, core, act_subs)
            # input 2 streams past it (sps_add): a row issues as soon as it is in, its results written
            # meanwhile, so the rows take the longer of the stream and the writes
            stream = mem.read_latency + core.request + beats * act_subs
            add += core.add_chunk + max(stream, _ceil_div(n, hw.cols) * core.add_row * _segment_beats(hw))
        parts["act_load"], parts["compute"] = loads, add
        load = loads
    else:
        al = act_load(d, hw)
        # one read latency: a band's later planes are requested while the plane before arrives (sps_load);
        # none when the layer before kept the input in the buffer (resident)
        parts["act_load"] = 0.0 if d.resident else mem.read_latency + core.request + al.beats * act_subs
        load = parts["act_load"]
        mult = tap_multiplicity(d, hw)
        tiles = mult.shape[0]
        slot_shift = layout.desc_slot_shift(d) if d.op == Op.CONV else None
        if slot_shift is not None:               # one cycle per (i, k) step, every group alike
            issue_by_class = [np.full(tiles, d.in_c * d.nnz, dtype=np.int64)] * max(1, d.patterns)
        else:
            issue_by_class = _tile_issue(d, mult)
        if d.op == Op.CONV:
            P = d.patterns if d.pps else 1
            grps = layout.row_groups(d.out_c, P, hw.rows, slot_shift)
            groups = len(grps)
            gbeats = layout.group_weight_bytes(d.in_c, d.nnz, hw.rows) // beat
            group_load = (_read(gbeats, mem, core, wgt_subs)
                          + _read(hw.rows * PARAM_RECORD_BYTES // beat, mem, core))
            prefetch = d.in_c * d.nnz <= hw.weight_buf_bytes // hw.rows // 2
            weights = group_load                   # the first group's, always in the open
            compute = 0.0
            for j, g in enumerate(grps):
                issue = issue_by_class[g.residue if d.pps else 0]
                mac += int(issue.sum())
                comp = _compute(issue, sum(o >= 0 for o in g.filters), d, hw, core)
                last = j == len(grps) - 1
                if prefetch:
                    hidden = 0.0 if last else group_load
                    weights += max(0.0, hidden - comp)
                    compute += comp
                else:
                    if j:
                        weights += group_load
                    compute += comp
                compute += core.group_gap
            parts["weights"], parts["compute"] = weights, compute
            load += weights
        else:                                      # pools: one channel at a time, one output row each
            lanes = layout.shared_pool_channels(hw.rows) if d.share else 1   # shared: a channel a row
            issue = np.full(tiles, d.kh * d.kw, dtype=np.int64) if d.share else issue_by_class[0]
            groups = _ceil_div(d.out_c, lanes)
            mac = int(issue.sum()) * groups
            parts["compute"] = groups * (_compute(issue, lanes, d, hw, core) + core.pool_channel)
    total = sum(parts.values())
    return LayerCycles(total=int(round(total)), mac=mac, load=int(round(load)),
                       parts={k: int(round(v)) for k, v in parts.items()}, groups=groups, tiles=tiles)


def program_cycles(program, mem: Memory = TESTBENCH, core: CoreTiming = CORE) -> List[LayerCycles]:
    """Modelled cycles of every descriptor of a compiled `Program`, in order."""
    return [layer_cycles(d, program.hw, mem, core) for d in program.descriptors()]


def ideal_cycles(d: Descriptor, hw: HwConfig) -> int:
    """One (i, k) step per cycle per tile and row group, no loads, no bank conflicts (layout.ideal_conv_cycles;
    pools: kh*kw steps per tile and channel; ADD: 0)."""
    if d.op == Op.CONV:
        return layout.ideal_conv_cycles(d.out_c, d.in_c, d.nnz, d.patterns if d.pps else 1, d.out_h * d.out_w,
                                        hw.rows, hw.cols, layout.desc_slot_shift(d))
    if d.op == Op.ADD:
        return 0
    groups = _ceil_div(d.out_c, layout.shared_pool_channels(hw.rows)) if d.share else d.out_c
    return groups * _ceil_div(d.out_h * d.out_w, hw.cols) * d.kh * d.kw


def mac_efficiency(d: Descriptor, cycles: int, hw: HwConfig) -> float:
    """Nonzero multiply-accumulates (Descriptor.sparse_macs) / (cycles x R x C): the share of the array's MAC
    slots doing work the layer needs (idle rows, idle columns, bank conflicts and loads all lower it)."""
    return d.sparse_macs() / (cycles * hw.rows * hw.cols) if cycles else 0.0


def seconds(cycles: int, clock_mhz: float) -> float:
    return cycles / (clock_mhz * 1e6)


def fps(total_cycles: int, clock_mhz: float) -> float:
    return clock_mhz * 1e6 / total_cycles if total_cycles else math.inf
