"""Modelled energy per inference of a packed network on the SPS core, and of the same network on the same array
reading other sparse formats. Every number here is a MODEL, not a measurement: event counts from the layer
descriptors and the cycle model (`sps_pynq.hw.cycles`), times per-event energies whose values, sources and
scaling to the XCZU7EV's 16 nm node are tabulated in docs/energy_model.md (rendered from `CONSTANTS` below by
`constants_markdown`). `sps-pynq energy` on a board prints this estimate next to the measured joules so the
constants can be corrected.

    E = sum over layers, over events (count x energy per event) + P_static x cycles / clock

Events of one layer (see `Events`): MAC slots issued on the DSP48E2 array (those holding a stored weight of a real
filter and output pixel, and idle ones: a row without a filter, a column past the map, a bank-conflict replay, a
row that waits for the busiest row), bits read and written in the on-chip buffers (activation and weight buffers
in BRAM; parameter records, accumulator shadow bank and output FIFO in registers), index bits read, DDR bytes
(hw.traffic.layer_traffic, bands included), control (a clock-tree and sequencer cost per cycle, address
generation per position stream, index decoding, requantization), and static power for the time the layer takes.

Other formats (`format_work`, `FORMATS`): the same network pruned unstructured by magnitude to the same density
as each PPS layer (K/9 of its weights), run on the same R x C output-stationary array. Each row walks its own
filter's entries, so the array waits for its busiest row (real masks), every row fetches its own activations
(R position streams instead of SPS's one broadcast stream), and each entry's index is read and decoded. Which
published design each format is modelled after is in FORMAT_DESIGNS.

Torch- and onnx-free (numpy and sps_pynq.hw only): `sps-pynq estimate` and `sps-pynq energy` run it on the board.
Only `format_work` / `formats_work` (the other formats) import the storage report and the compiler's quantizer,
when called: a workstation job (`scripts/energy_report.py`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..hw import layout
from ..hw.bands import act_load
from ..hw.config import HwConfig
from ..hw.descriptor import PARAM_RECORD_BYTES, Descriptor, Op
from ..hw.traffic import layer_traffic

MODELLED = "modelled"
DEFAULT_CLOCK_MHZ = 150.0       # pl_clk0 of the overlay build (overlays/README.md, hw_src/vivado/build_overlay.tcl)
COMPONENTS = ("mac", "onchip", "ddr", "control", "static")
COMPONENT_TITLES = {"mac": "MAC (DSP48E2)", "onchip": "on-chip buffers", "ddr": "DDR", "control": "control",
                    "static": "static"}

# ----------------------------------------------------------------------------------------------------- constants
# Published reference energies, 45 nm CMOS at 0.9 V: M. Horowitz, "Computing's energy problem (and what we can do
# about it)", ISSCC 2014, Fig. 1.1.9 (pJ per operation / per 64-bit access); the 32-bit register-file access as
# tabulated from the same source in Han et al., "EIE", ISCA 2016, Table I.
REF_45NM_PJ = {
    "add16": 0.05,          # 16-bit integer add
    "add32": 0.1,           # 32-bit integer add
    "mult8": 0.2,           # 8-bit integer multiply
    "mult32": 3.1,          # 32-bit integer multiply
    "reg32": 1.0,           # 32-bit register-file access
    "sram8k_64b": 10.0,     # 64-bit read of an 8 KB SRAM ("cache")
    "dram_64b": 1300.0,     # 64-bit DRAM access: 1.3 .. 2.6 nJ
}
# Scaling 45 nm / 0.9 V -> 16 nm FinFET / 0.85 V (VCCINT of the XCZU7EV): classical constant-field scaling of
# switched energy C * V^2 with C proportional to the feature size.
NODE_SCALE = (16.0 / 45.0) * (0.85 / 0.90) ** 2
# FPGA over ASIC dynamic energy at the same node: I. Kuon, J. Rose, "Measuring the gap between FPGAs and ASICs",
# IEEE TCAD 26(2), 2007: about 14x for logic in LUTs, flip-flops and routing ("soft"); smaller with hard blocks
# (DSP, block RAM), for which the paper gives no single number, so HARD is an assumption bounded by SOFT.
FPGA_SOFT, FPGA_SOFT_RANGE = 14.0, (7.0, 28.0)
FPGA_HARD, FPGA_HARD_RANGE = 5.0, (2.0, 14.0)
# Flip-flops of the synthesized core (Yosys 0.70, zcu104 configuration, docs/hardware.md "Synthesis").
CORE_FLIP_FLOPS = 27214
# XCZU7EV logic cells (Zynq UltraScale+ product selection guide): ZU2EG 103,320, ZU7EV 504,000, ZU19EG 1,143,450.
# Xilinx wiki, "Power Optimization Guide for Zynq UltraScale+ MPSoC": "Static power is directly proportional to
# device capacity ... XCZU19EG device consumes 850mW more than a XCZU2EG device in static power."
_STATIC_PER_CELL_W = 0.850 / (1_143_450 - 103_320)
ZU7EV_LOGIC_CELLS = 504_000


@dataclass(frozen=True)
class Constant:
    key: str
    value: float
    low: float
    high: float
    unit: str
    what: str            # what one event is
    basis: str           # how the value is computed
    source: str          # where the inputs come from; "assumption" when no source backs it


def _scaled(ref_pj: float, factor: float, rng) -> tuple:
    return ref_pj * NODE_SCALE * factor, ref_pj * NODE_SCALE * rng[0], ref_pj * NODE_SCALE * rng[1]


def _constants() -> Dict[str, Constant]:
    r = REF_45NM_PJ
    hard, soft = FPGA_HARD_RANGE, FPGA_SOFT_RANGE
    node = f"x {NODE_SCALE:.4f} (16/45 x (0.85/0.9)^2)"
    horowitz = "Horowitz ISSCC 2014 (45 nm)"
    kr = "Kuon & Rose TCAD 2007"
    out = []
    v, lo, hi = _scaled(r["mult8"] + r["add32"], FPGA_HARD, hard)
    out.append(Constant("mac_pj", v, lo, hi, "pJ", "one 8x8-bit multiply with 32-bit accumulate on a DSP48E2",
                        f"(mult8 0.2 + add32 0.1) {node} x hard-block factor {FPGA_HARD:g} ({hard[0]:g}..{hard[1]:g})",
                        f"{horowitz}; {kr} (hard-block factor: assumption)"))
    out.append(Constant("mac_idle_fraction", 0.25, 0.1, 1.0, "x mac_pj",
                        "an issued MAC slot with no work (zero weight held, column disabled, waiting row)",
                        "clock and pipeline registers of the DSP still switch, the operands do not",
                        "assumption"))
    v, lo, hi = _scaled(r["sram8k_64b"] / 64, FPGA_HARD, hard)
    out.append(Constant("bram_pj_per_bit", v, lo, hi, "pJ/bit",
                        "one bit read or written in block RAM (activation, weight and index buffers)",
                        f"8 KB SRAM 10 pJ / 64 bit {node} x hard-block factor {FPGA_HARD:g} "
                        f"({hard[0]:g}..{hard[1]:g}); reads and writes alike",
                        f"{horowitz}; {kr} (hard-block factor: assumption)"))
    v, lo, hi = _scaled(r["reg32"] / 32, FPGA_SOFT, soft)
    out.append(Constant("reg_pj_per_bit", v, lo, hi, "pJ/bit",
                        "one bit written to / read from flip-flops through fabric routing (parameter records, "
                        "accumulator shadow bank, output FIFO, routed crossbar bits)",
                        f"32-bit register file 1 pJ / 32 {node} x soft-logic factor {FPGA_SOFT:g} "
                        f"({soft[0]:g}..{soft[1]:g})", f"{horowitz} via Han et al. ISCA 2016 Table I; {kr}"))
    v, lo, hi = _scaled(r["add16"], FPGA_SOFT, soft)
    out.append(Constant("add16_pj", v, lo, hi, "pJ",
                        "one 16-bit add in LUTs (address generation, counters, index decoding)",
                        f"add16 0.05 pJ {node} x soft-logic factor {FPGA_SOFT:g} ({soft[0]:g}..{soft[1]:g})",
                        f"{horowitz}; {kr}"))
    v, lo, hi = _scaled(r["mult32"] + r["add32"], FPGA_HARD, hard)
    out.append(Constant("requant_pj", v, lo, hi, "pJ",
                        "one requantization (32x32-bit multiply, add, round, shift, saturate) in DSPs",
                        f"(mult32 3.1 + add32 0.1) {node} x hard-block factor {FPGA_HARD:g} "
                        f"({hard[0]:g}..{hard[1]:g})", f"{horowitz}; {kr} (hard-block factor: assumption)"))
    reg = out[3]
    out.append(Constant("ff_clock_pj", 0.25 * reg.value, 0.1 * reg.low, 1.0 * reg.high, "pJ",
                        "one flip-flop's clock pin and clock-tree share, every cycle whether or not data changes",
                        "0.25 (0.1..1) x reg_pj_per_bit; x 27,214 flip-flops of the core (Yosys) per cycle",
                        "assumption (the ratio); flip-flop count measured, docs/hardware.md"))
    ddr = r["dram_64b"] / 64
    out.append(Constant("ddr_pj_per_bit", ddr, ddr / 2, 2 * ddr, "pJ/bit",
                        "one bit moved between DDR4 and the core (device access and I/O)",
                        "DRAM 1.3 nJ / 64 bit, not node-scaled (an off-chip DRAM, not the 16 nm fabric); range "
                        "half (DDR4's 1.2 V I/O, assumption) to double (Horowitz's 2.6 nJ upper end)",
                        horowitz))
    static = _STATIC_PER_CELL_W * ZU7EV_LOGIC_CELLS
    out.append(Constant("static_w", static, 0.3, 1.0, "W",
                        "static power of the programmable logic while a layer runs (whole device, PS excluded)",
                        "850 mW / (1,143,450 - 103,320) cells x 504,000 cells (static proportional to capacity); "
                        "range: leakage grows with junction temperature (assumption)",
                        "Xilinx wiki, Power Optimization Guide for Zynq UltraScale+ MPSoC; product selection guide"))
    return {c.key: c for c in out}


CONSTANTS: Dict[str, Constant] = _constants()
CORNERS = ("nominal", "low", "high")


def constants(corner: str = "nominal", **overrides: float) -> Dict[str, float]:
    """The per-event energies of one corner ("nominal", "low": every constant at its low end, "high"), with
    `overrides` by key (e.g. static_w=0.6 from a board's idle INT rail)."""
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; one of {', '.join(CORNERS)}")
    attr = {"nominal": "value", "low": "low", "high": "high"}[corner]
    out = {k: float(getattr(c, attr)) for k, c in CONSTANTS.items()}
    unknown = set(overrides) - set(out)
    if unknown:
        raise ValueError(f"unknown energy constants {sorted(unknown)}; known: {', '.join(out)}")
    out.update({k: float(v) for k, v in overrides.items()})
    return out


def constants_markdown() -> str:
    """The constants table of docs/energy_model.md (a test keeps the document equal to it)."""
    lines = ["| constant | nominal | low | high | unit | one event is | how | source |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in CONSTANTS.values():
        lines.append(f"| `{c.key}` | {c.value:.4g} | {c.low:.4g} | {c.high:.4g} | {c.unit} | {c.what} | {c.basis} | "
                     f"{c.source} |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- events
@dataclass
class Events:
    """What one layer (descriptor) does, counted; `energy()` prices it. Every count is modelled."""
    cycles: int = 0                 # total cycles of the layer (cycle model)
    mac_cycles: int = 0             # cycles the array issues MACs
    mac_active: int = 0             # MAC slots with a nonzero weight of a real filter and a real output pixel
    mac_zero_weight: int = 0        # MAC slots with a stored weight that is zero (inside a pattern, or a filler)
    mac_idle: int = 0               # the other issued slots: mac_cycles x R x C - mac_active - mac_zero_weight
    act_read_bits: int = 0          # activation buffer (BRAM)
    act_write_bits: int = 0
    weight_read_bits: int = 0       # weight buffer (BRAM): weight values
    weight_write_bits: int = 0
    index_read_bits: int = 0        # weight buffer (BRAM): index bits (other formats)
    index_write_bits: int = 0
    param_read_bits: int = 0        # parameter records (registers)
    param_write_bits: int = 0
    output_bits: int = 0            # accumulator shadow bank and output FIFO (registers)
    routed_bits: int = 0            # activation bytes through a position stream's crossbar (registers)
    addr_adds: int = 0              # 16-bit adds: per column address generation of each position stream
    decode_adds: int = 0            # 16-bit adds: index unit / index decoding
    requants: int = 0               # requantizations (one per output element; ADD: one per element)
    ddr_read_bytes: int = 0
    ddr_write_bytes: int = 0

    def __add__(self, other: "Events") -> "Events":
        return Events(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def energy(self, k: Dict[str, float], clock_mhz: float) -> Dict[str, float]:
        """Joules by component (COMPONENTS), modelled."""
        pj = 1e-12
        onchip_bram = (self.act_read_bits + self.act_write_bits + self.weight_read_bits + self.weight_write_bits
                       + self.index_read_bits + self.index_write_bits)
        onchip_reg = self.param_read_bits + self.param_write_bits + self.output_bits
        return {
            "mac": pj * k["mac_pj"] * (self.mac_active + k["mac_idle_fraction"] * (self.mac_zero_weight
                                                                                    + self.mac_idle)),
            "onchip": pj * (k["bram_pj_per_bit"] * onchip_bram + k["reg_pj_per_bit"] * onchip_reg),
            "ddr": pj * k["ddr_pj_per_bit"] * 8 * (self.ddr_read_bytes + self.ddr_write_bytes),
            "control": pj * (k["ff_clock_pj"] * CORE_FLIP_FLOPS * self.cycles
                             + k["add16_pj"] * (self.addr_adds + self.decode_adds)
                             + k["reg_pj_per_bit"] * self.routed_bits + k["requant_pj"] * self.requants),
            "static": k["static_w"] * self.cycles / (clock_mhz * 1e6),
        }


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _tiles(d: Descriptor, hw: HwConfig) -> int:
    return _ceil_div(d.out_h * d.out_w, hw.cols)


def _common(d: Descriptor, hw: HwConfig, cycles: int, mac_cycles: int) -> Events:
    """Events every format shares: cycles, the input map's load into the activation buffer, the output, DDR."""
    t = layer_traffic(d, hw)
    out_bytes = d.out_c * d.out_h * d.out_w
    ev = Events(cycles=int(cycles), mac_cycles=int(mac_cycles), requants=out_bytes,
                ddr_read_bytes=sum(v for key, v in t.items() if key != "act_written"),
                ddr_write_bytes=t["act_written"], output_bits=2 * 8 * out_bytes)      # FIFO in and out
    beat = hw.axi_data_bits // 8
    if d.op == Op.ADD:
        # input 1 through the buffer (loaded, or already there when resident); input 2 streams past it (sps_add):
        # DDR reads both inputs, or input 2 alone, in whole beats of the same size
        buffered = 8 * (t["act_read"] // (1 if d.resident else 2))
        ev.act_read_bits = buffered
        ev.act_write_bits = 0 if d.resident else buffered
    else:
        ev.act_write_bits = 0 if d.resident else 8 * act_load(d, hw).beats * beat
    if d.keep:                                       # the output into the buffer too, for the next layer
        ev.act_write_bits += 8 * out_bytes
    return ev


def sps_events(d: Descriptor, hw: HwConfig, lc, nonzero_weights: Optional[int] = None) -> Events:
    """The SPS core running descriptor `d` (PPS, dense, pool or ADD) with cycle-model result `lc` (`.total`,
    `.mac`): one position stream broadcast to all rows, C activation bytes and R weight bytes per MAC cycle.
    `nonzero_weights`: how many of the layer's O x I x K stored weights are nonzero (`stored_nonzeros`); None
    counts every stored weight as nonzero."""
    ev = _common(d, hw, lc.total, lc.mac)
    if d.op == Op.ADD:
        return ev
    R, C = hw.rows, hw.cols
    tiles = _tiles(d, hw)
    slots = lc.mac * R * C
    # a shared layer (classes or pool channels sharing row groups) reads and routes whole 8-slice words
    word = layout.ACT_LANES if layout.is_shared(d) else 1
    ev.act_read_bits = 8 * word * C * lc.mac
    ev.routed_bits = 8 * word * C * lc.mac
    ev.addr_adds = 2 * C * lc.mac
    ev.decode_adds = lc.mac                                  # the indexing unit: one tap per cycle for all rows
    if d.op == Op.CONV:
        P = d.patterns if d.pps else 1
        groups = len(layout.row_groups(d.out_c, P, R, layout.desc_slot_shift(d)))
        t = layer_traffic(d, hw)
        stored = d.out_c * d.in_c * d.nnz
        nonzero = stored if nonzero_weights is None else min(int(nonzero_weights), stored)
        ev.mac_active = nonzero * d.out_h * d.out_w
        ev.mac_zero_weight = (stored - nonzero) * d.out_h * d.out_w
        ev.weight_read_bits = 8 * R * lc.mac
        ev.weight_write_bits = 8 * t["weights"]
        ev.param_write_bits = 8 * t["params"]
        ev.param_read_bits = groups * tiles * R * PARAM_RECORD_BYTES * 8
        ev.output_bits += groups * tiles * R * C * 32              # accumulators into the shadow bank
    else:                                                          # pools: row 0 of the array, window taps
        ev.mac_active = d.out_c * d.out_h * d.out_w * d.kh * d.kw
        ev.output_bits += d.out_c * tiles * C * 32
    ev.mac_idle = max(0, slots - ev.mac_active - ev.mac_zero_weight)
    return ev


def stored_nonzeros(program, d: Descriptor) -> Optional[int]:
    """Nonzero int8 weights in CONV `d`'s packed row groups in the program's image (idle rows and padding are
    zeros, so this is the layer's nonzero weights); None when there are none to read."""
    image = getattr(program, "image", None)
    if d.op != Op.CONV or image is None:
        return None
    n = layout.weight_bytes(d.out_c, d.in_c, d.nnz, d.patterns if d.pps else 1, program.hw.rows,
                            layout.desc_slot_shift(d))
    if d.weight_offset + n > len(image):
        return None
    return int(np.count_nonzero(np.frombuffer(image, dtype=np.int8, count=n, offset=d.weight_offset)))


def dense_descriptor(d: Descriptor) -> Descriptor:
    """The same CONV on the same core in dense mode (K = kh*kw, one class): the unpruned network's layer."""
    return replace(d, pps=False, share=False, patterns=1, nnz=d.kh * d.kw, pattern_masks=[])


# -------------------------------------------------------------------------------------------- other formats
FORMATS = ("csr", "coo", "bitmap", "relative", "pattern_id")
FORMAT_DESIGNS = {
    "csr": "EIE-like: each PE walks its own rows' nonzeros (EIE stores CSC with 4-bit relative indices; here "
           "absolute column indices and a pointer per filter)",
    "coo": "SCNN-like: every nonzero carries its coordinates (filter and flattened (i, ky, kx)), from which the "
           "product's destination is computed",
    "bitmap": "SparTen-like: a bit mask per filter; a priority encoder finds each next nonzero",
    "relative": "EIE-like: EIE's own 4-bit relative index (zeros skipped since the previous entry), filler "
                "entries for gaps over 15",
    "pattern_id": "PatDNN-like: one of P kernel patterns per kernel, its id stored per kernel and decoded through "
                  "the pattern table; every kernel has K taps, so no imbalance, but kernels of one input channel "
                  "differ in pattern, so every row fetches its own activations",
}
# 16-bit-add equivalents to decode one entry's index into an activation position (assumptions, docs/energy_model.md)
DECODE_ADDS = {"csr": 2, "coo": 3, "bitmap": 2, "relative": 3, "pattern_id": 1}


@dataclass
class RowWork:
    """How a pruned CONV layer is stored and walked under one format: per filter o, the entries its row walks."""
    fmt: str
    entries: np.ndarray                 # (O,) entries row o walks per tile (nonzeros, + fillers for relative)
    nonzeros: int                       # nonzero weights of the layer (useful MACs per output pixel)
    value_bits: int = 8                 # bits of one entry's weight value
    index_bits_per_entry: float = 0.0   # index bits read with each entry
    index_bits_per_tile: int = 0        # index bits read once per tile for the whole layer (pointers, bitmaps,
                                        # pattern ids)
    stored_bits: int = 0                # weight + index bits of the layer (storage report): DDR and buffer writes
    decode_adds_per_entry: int = 0


def magnitude_mask(w: np.ndarray, density: float) -> np.ndarray:
    """Unstructured magnitude pruning of one layer: True for the round(density * size) weights of largest |w|
    (ties broken by position, so the result is deterministic)."""
    a = np.abs(np.asarray(w, dtype=np.float64)).ravel()
    keep = int(round(density * a.size))
    mask = np.zeros(a.size, dtype=bool)
    if keep > 0:
        order = np.argsort(-a, kind="stable")
        mask[order[:keep]] = True
    return mask.reshape(np.shape(w))


def row_fillers(nz: np.ndarray, max_gap: int) -> np.ndarray:
    """Per row of a (rows, cols) bool matrix, the filler entries a relative index of gaps <= max_gap needs
    (a run of g zeros before an entry costs g // (max_gap + 1) fillers; trailing zeros none)."""
    nz = np.asarray(nz, dtype=bool)
    out = np.zeros(nz.shape[0], dtype=np.int64)
    rows, cols = np.nonzero(nz)
    if rows.size == 0:
        return out
    prev = np.empty_like(cols)
    prev[0] = -1
    prev[1:] = cols[:-1]
    prev[np.r_[True, rows[1:] != rows[:-1]]] = -1
    gaps = cols - prev - 1
    np.add.at(out, rows, gaps // (max_gap + 1))
    return out


def format_work(fmt: str, q: np.ndarray, P: int, K: int, index_width: str = "minimal") -> RowWork:
    """`RowWork` of an int8 layer `q` (O, I, kh, kw) pruned unstructured (every format but pattern_id) or of the
    PPS(P, K)-shaped pattern-id layer of the same shape (pattern_id: only the shape, P and K matter). Index widths
    and stored bits are those of the storage report (`analysis.storage`)."""
    from . import storage          # noqa: PLC0415  (needs the compiler's quantizer: not on the board path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    q = np.asarray(q)
    O, I = q.shape[0], q.shape[1]
    taps = int(np.prod(q.shape[2:]))
    if fmt == "pattern_id":
        bits = storage.pattern_bits(O, I, P, K)["pattern_id"]
        id_bits = math.ceil(math.log2(P)) if P > 1 else 0
        return RowWork(fmt, np.full(O, I * K, dtype=np.int64), O * I * K, index_bits_per_tile=O * I * id_bits,
                       stored_bits=bits.total, decode_adds_per_entry=DECODE_ADDS[fmt])
    nz = q.reshape(O, -1) != 0
    per_row = nz.sum(axis=1).astype(np.int64)
    nnz = int(per_row.sum())
    bits = storage.sparse_bits(q.reshape(O, -1), index_width)[fmt]
    cols = I * taps
    if index_width == "fixed":
        w_row, w_col, w_ptr = 16, 16, 32
    else:
        w_row, w_col = storage.index_bits(O), storage.index_bits(cols)
        w_ptr = storage.pointer_bits(nnz)
    work = RowWork(fmt, per_row, nnz, stored_bits=bits.total, decode_adds_per_entry=DECODE_ADDS[fmt])
    if fmt == "csr":
        work.index_bits_per_entry, work.index_bits_per_tile = w_col, (O + 1) * w_ptr
    elif fmt == "coo":
        work.index_bits_per_entry = w_row + w_col
    elif fmt == "bitmap":
        work.index_bits_per_tile = O * cols
    elif fmt == "relative":
        fill = row_fillers(nz, storage.REL_MAX_GAP)
        work.entries = per_row + fill
        ptr = storage.pointer_bits(int(work.entries.sum())) if index_width == "minimal" else 32
        work.index_bits_per_entry, work.index_bits_per_tile = storage.REL_INDEX_BITS, (O + 1) * ptr
    return work


def format_cycles(d: Descriptor, hw: HwConfig, lc_dense, work: RowWork):
    """(total cycles, MAC cycles, busiest-row steps per tile summed over row groups) of CONV `d` walked per row
    under `work`, from the cycle model's result `lc_dense` for the same layer in dense mode: the dense layer's
    cycles besides its MAC cycles (loads, control, drain) are kept, and its MAC cycles scale with the busiest
    row of each group of R consecutive filters (bank-conflict replays kept in proportion)."""
    R = hw.rows
    groups = _ceil_div(d.out_c, R)
    busy = sum(int(work.entries[g * R:(g + 1) * R].max()) for g in range(groups))
    tiles = _tiles(d, hw)
    ideal_dense = groups * tiles * d.in_c * d.kh * d.kw
    replay = lc_dense.mac / ideal_dense if ideal_dense else 1.0
    mac = int(round(tiles * busy * replay))
    return lc_dense.total - lc_dense.mac + mac, mac, busy


def format_events(d: Descriptor, hw: HwConfig, lc_dense, work: RowWork) -> Events:
    """A pruned CONV descriptor `d` on the same array reading format `work.fmt` (see the module doc)."""
    if d.op != Op.CONV:
        raise ValueError("format_events is for CONV layers")
    R, C = hw.rows, hw.cols
    total, mac, busy = format_cycles(d, hw, lc_dense, work)
    dd = dense_descriptor(d)                                 # rows in groups of R consecutive filters (P = 1)
    ev = _common(dd, hw, total, mac)
    tiles = _tiles(d, hw)
    groups = _ceil_div(d.out_c, R)
    replay = mac / (tiles * busy) if busy else 1.0
    walked = tiles * int(work.entries.sum()) * replay       # (row, cycle) pairs in which a row works
    t = layer_traffic(dd, hw)
    ev.ddr_read_bytes += _ceil_div(work.stored_bits, 8) - t["weights"]    # the format's weights and index
    ev.mac_active = work.nonzeros * d.out_h * d.out_w
    stored = int(work.entries.sum()) if work.fmt == "relative" else work.nonzeros
    ev.mac_zero_weight = (stored - work.nonzeros) * d.out_h * d.out_w          # relative: the filler entries
    ev.mac_idle = max(0, mac * R * C - ev.mac_active - ev.mac_zero_weight)
    ev.act_read_bits = int(8 * C * walked)                   # every working row reads its own C activations
    ev.routed_bits = int(8 * C * walked)
    ev.addr_adds = int(2 * C * walked)
    ev.decode_adds = int(work.decode_adds_per_entry * walked)
    ev.weight_read_bits = int(work.value_bits * walked)
    ev.index_read_bits = int(work.index_bits_per_entry * walked + work.index_bits_per_tile * tiles)
    ev.weight_write_bits = 8 * int(work.nonzeros if work.fmt != "relative" else work.entries.sum())
    ev.index_write_bits = max(0, work.stored_bits - ev.weight_write_bits)
    ev.param_write_bits = 8 * t["params"]
    ev.param_read_bits = groups * tiles * R * PARAM_RECORD_BYTES * 8
    ev.output_bits += groups * tiles * R * C * 32
    return ev


# --------------------------------------------------------------------------------------------------- networks
def _default_cycles() -> Callable:
    """layer_cycles of the cycle model with its ZCU104 DDR timing when it has one."""
    from ..hw import cycles   # noqa: PLC0415  (imported when used, so tests can hand in fakes)
    mem = getattr(cycles, "ZCU104_DDR", None)
    if mem is None:
        return cycles.layer_cycles
    return lambda d, hw: cycles.layer_cycles(d, hw, mem)


def cycle_model_name() -> str:
    from ..hw import cycles   # noqa: PLC0415
    mem = getattr(cycles, "ZCU104_DDR", None)
    return "sps_pynq.hw.cycles" + (f" with memory {mem.name}" if mem is not None and hasattr(mem, "name") else "")


@dataclass
class LayerEstimate:
    name: str
    op: str
    bands: int
    events: Events
    energy_j: Dict[str, float]

    @property
    def total_j(self) -> float:
        return sum(self.energy_j.values())

    def to_dict(self, clock_mhz: float) -> dict:
        return {"name": self.name, "op": self.op, "bands": self.bands, "cycles": self.events.cycles,
                "mac_cycles": self.events.mac_cycles, "seconds": self.events.cycles / (clock_mhz * 1e6),
                "ddr_read_bytes": self.events.ddr_read_bytes, "ddr_write_bytes": self.events.ddr_write_bytes,
                "energy_j": dict(self.energy_j), "total_j": self.total_j, "events": asdict(self.events)}


@dataclass
class NetworkEstimate:
    fmt: str                    # "sps", "dense" or one of FORMATS
    clock_mhz: float
    corner: str
    layers: List[LayerEstimate] = field(default_factory=list)

    @property
    def events(self) -> Events:
        return sum((l.events for l in self.layers), Events())

    @property
    def energy_j(self) -> Dict[str, float]:
        return {c: sum(l.energy_j[c] for l in self.layers) for c in COMPONENTS}

    @property
    def total_j(self) -> float:
        return sum(self.energy_j.values())

    @property
    def dynamic_j(self) -> float:
        return self.total_j - self.energy_j["static"]

    @property
    def cycles(self) -> int:
        return sum(l.events.cycles for l in self.layers)

    @property
    def seconds(self) -> float:
        return self.cycles / (self.clock_mhz * 1e6)

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds if self.cycles else math.inf

    def to_dict(self) -> dict:
        ev = self.events
        return {"modelled": True, "format": self.fmt, "clock_mhz": self.clock_mhz, "corner": self.corner,
                "cycles": self.cycles, "seconds": self.seconds, "fps": self.fps,
                "ddr_read_bytes": ev.ddr_read_bytes, "ddr_write_bytes": ev.ddr_write_bytes,
                "energy_j": self.energy_j, "total_j": self.total_j, "dynamic_j": self.dynamic_j,
                "layers": [l.to_dict(self.clock_mhz) for l in self.layers]}


def _layer_spans(program) -> List[tuple]:
    """(name, op, first descriptor, number of descriptors) per network layer: the compiler's metadata (bands
    summed), or one per descriptor when the program has none."""
    metas = (program.metadata or {}).get("layers") or []
    descs = program.num_layers
    if metas and sum(int(m.get("bands", 1)) for m in metas) == descs:
        out, j = [], 0
        for m in metas:
            n = int(m.get("bands", 1))
            out.append((m["name"], m["op"], j, n))
            j += n
        return out
    return [(info.name, None, j, 1) for j, info in enumerate(program.layers)]


def estimate(program, fmt: str = "sps", clock_mhz: float = DEFAULT_CLOCK_MHZ, corner: str = "nominal",
             k: Optional[Dict[str, float]] = None, cycles_fn: Optional[Callable] = None,
             work: Optional[Dict[str, Dict[str, RowWork]]] = None) -> NetworkEstimate:
    """Modelled cycles, DDR bytes and energy per inference of `program` under `fmt`:
    "sps" (as packed), "dense" (every CONV in dense mode on the same core: the unpruned network), or one of
    FORMATS, which needs `work` = {layer name: {format: RowWork}} for every PPS layer (see `formats_work`).
    Layers the program keeps dense (first conv, 1x1, FC), pools and ADDs run the same in every format."""
    if clock_mhz <= 0:
        raise ValueError(f"the clock must be > 0 MHz, got {clock_mhz}")
    if fmt not in ("sps", "dense") + FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    k = k or constants(corner)
    cycles_fn = cycles_fn or _default_cycles()
    hw = program.hw
    descs = program.descriptors()
    out = NetworkEstimate(fmt, clock_mhz, corner)
    for name, op, j0, n in _layer_spans(program):
        ev = Events()
        for d in descs[j0:j0 + n]:
            pruned = d.op == Op.CONV and d.pps
            if fmt == "sps" or not pruned:
                ev = ev + sps_events(d, hw, cycles_fn(d, hw), stored_nonzeros(program, d))
                continue
            dd = dense_descriptor(d)
            lc_dense = cycles_fn(dd, hw)
            if fmt == "dense":
                ev = ev + sps_events(dd, hw, lc_dense)
            else:
                if work is None or name not in work:
                    raise ValueError(f"layer {name}: format {fmt} needs the layer's weights (formats_work)")
                ev = ev + format_events(d, hw, lc_dense, work[name][fmt])
        out.layers.append(LayerEstimate(name, op or descs[j0].op.name, n, ev, ev.energy(k, clock_mhz)))
    return out


def pruned_layers(program) -> Dict[str, tuple]:
    """{layer name: (O, I, P, K)} of the program's PPS layers (compiler metadata)."""
    out = {}
    for m in (program.metadata or {}).get("layers") or []:
        if m.get("op") == "CONV" and m.get("masks"):
            O, I = int(m["out_shape"][0]), int(m["in_shape"][0])
            out[m["name"]] = (O, I, int(m["P"]), int(m["K"]))
    return out


def formats_work(program, weights: Dict[str, np.ndarray], index_width: str = "minimal",
                 formats: Sequence[str] = FORMATS) -> Dict[str, Dict[str, RowWork]]:
    """For every PPS layer of `program`: its float weights `weights[name]` (O, I, 3, 3) pruned unstructured by
    magnitude to the PPS layer's density K/9, quantized to int8 as the compiler does, and walked under each of
    `formats`. Layers missing from `weights` raise."""
    from .storage import quantize_int8   # noqa: PLC0415
    out = {}
    for name, (O, I, P, K) in pruned_layers(program).items():
        if name not in weights:
            raise ValueError(f"no float weights for PPS layer {name}")
        w = np.asarray(weights[name], dtype=np.float64)
        if w.shape[:2] != (O, I):
            raise ValueError(f"layer {name}: weights {list(w.shape)} do not match the program's ({O}, {I}, ...)")
        kept = np.where(magnitude_mask(w, K / (w.shape[2] * w.shape[3])), w, 0.0)
        q = quantize_int8(kept)
        out[name] = {f: format_work(f, q, P, K, index_width) for f in formats}
    return out


def compare(estimates: Dict[str, NetworkEstimate], base: str = "sps") -> Dict[str, Dict[str, float]]:
    """Per format: total and dynamic joules over `base`'s (how many times more energy than SPS), modelled."""
    b = estimates[base]
    return {f: {"total_ratio": e.total_j / b.total_j, "dynamic_ratio": e.dynamic_j / b.dynamic_j,
                "cycles_ratio": e.cycles / b.cycles} for f, e in estimates.items()}


COMPONENT_SHORT = {"mac": "MAC", "onchip": "on-chip", "ddr": "DDR", "control": "control", "static": "static"}


def _fmt_j(j: float) -> str:
    uj = j * 1e6
    return f"{uj:,.3f}" if abs(uj) < 100 else f"{uj:,.1f}"


def format_estimate(est: NetworkEstimate, title: str, per_layer: bool = True) -> str:
    """The human-readable estimate: per layer and in total, every number labelled modelled."""
    lines = [f"{title}: MODELLED estimate, not a measurement (cycle model + energy model of "
             f"docs/energy_model.md, {est.corner} constants), clock {est.clock_mhz:g} MHz"]
    comps = "".join(f" {COMPONENT_SHORT[c]:>10}" for c in COMPONENTS)
    if per_layer:
        wn = max([len("layer")] + [len(l.name) for l in est.layers])
        head = (f"{'layer':<{wn}} {'op':<7} {'bands':>5} {'cycles':>11} {'time us':>9} {'DDR bytes':>12}"
                f"{comps} {'total':>10}")
        lines += ["", "per layer, all modelled; energy in uJ", head, "-" * len(head)]
        for l in est.layers:
            e = l.energy_j
            lines.append(f"{l.name:<{wn}} {l.op:<7} {l.bands:>5} {l.events.cycles:>11,} "
                         f"{l.events.cycles / est.clock_mhz:>9,.1f} "
                         f"{l.events.ddr_read_bytes + l.events.ddr_write_bytes:>12,}"
                         + "".join(f" {_fmt_j(e[c]):>10}" for c in COMPONENTS) + f" {_fmt_j(l.total_j):>10}")
    ev, e = est.events, est.energy_j
    slots = max(1, ev.mac_active + ev.mac_zero_weight + ev.mac_idle)
    lines += ["", f"total (modelled): {est.cycles:,} cycles = {est.seconds * 1e3:,.3f} ms at {est.clock_mhz:g} MHz "
                  f"-> {est.fps:,.1f} frames/s (modelled, batch 1)",
              f"DDR per inference (modelled): {ev.ddr_read_bytes:,} bytes read, {ev.ddr_write_bytes:,} written",
              f"energy per inference (modelled): {est.total_j * 1e3:,.4f} mJ = "
              + ", ".join(f"{COMPONENT_TITLES[c]} {e[c] * 1e3:,.4f}" for c in COMPONENTS)
              + f" mJ; dynamic (without static) {est.dynamic_j * 1e3:,.4f} mJ",
              f"MAC slots (modelled): {ev.mac_active:,} with a nonzero weight, {ev.mac_zero_weight:,} with a zero "
              f"weight, {ev.mac_idle:,} idle ({ev.mac_active / slots:.1%} nonzero)"]
    return "\n".join(lines)


def corners(program, **kwargs) -> Dict[str, NetworkEstimate]:
    """The estimate at every corner of the constants (same events)."""
    return {c: estimate(program, corner=c, **kwargs) for c in CORNERS}


def events_by_format(estimates: Iterable[NetworkEstimate]) -> Dict[str, Events]:
    return {e.fmt: e.events for e in estimates}


# ------------------------------------------------------------------------------------- beside a measurement
def beside_measurement(measured, program, clock_mhz: float = DEFAULT_CLOCK_MHZ, corner: str = "nominal",
                       cycles_fn: Optional[Callable] = None) -> dict:
    """The modelled estimate of `program` next to a measurement (an `analysis.energy.EnergyResult`): the measured
    joules above idle over the modelled dynamic joules (the idle phase of the measurement removes static power),
    and the measured median latency over the modelled core time. Ratios are None where nothing was measured, and
    the latency ratio also where the latency is not the FPGA's (the measurement's `note` says so: sim, virtual)."""
    est = estimate(program, "sps", clock_mhz, corner, cycles_fn=cycles_fn)
    jpi = getattr(measured, "joules_per_inference", None)
    lat = None if getattr(measured, "note", "") else getattr(measured, "latency_median_s", None)
    return {"modelled": True, "clock_mhz": clock_mhz, "corner": corner, "cycles": est.cycles, "seconds": est.seconds,
            "fps": est.fps, "energy_j": est.energy_j, "total_j": est.total_j, "dynamic_j": est.dynamic_j,
            "measured_joules_above_idle": jpi,
            "measured_over_modelled_dynamic": jpi / est.dynamic_j if jpi is not None and est.dynamic_j else None,
            "measured_latency_median_s": lat,
            "measured_over_modelled_latency": lat / est.seconds if lat and est.seconds else None}


def format_beside(b: dict) -> str:
    lines = [f"  modelled estimate (not measured; docs/energy_model.md, {b['corner']} constants, "
             f"{b['clock_mhz']:g} MHz): {b['total_j'] * 1e3:.4f} mJ per inference (modelled), of which dynamic "
             f"{b['dynamic_j'] * 1e3:.4f} mJ (modelled); core time {b['seconds'] * 1e3:.3f} ms (modelled)"]
    if b["measured_over_modelled_dynamic"] is None:
        lines.append("  measured / modelled energy: no measured energy to compare (no power rails)")
    else:
        lines.append(f"  measured above idle / modelled dynamic: {b['measured_over_modelled_dynamic']:.2f}x "
                     f"(the measurement also holds the host's copies and the PS; the model prices the core, its "
                     f"buffers and DDR)")
    if b["measured_over_modelled_latency"] is not None:
        lines.append(f"  measured median latency / modelled core time: {b['measured_over_modelled_latency']:.2f}x")
    return "\n".join(lines)
