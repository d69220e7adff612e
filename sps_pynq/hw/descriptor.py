"""The layer descriptor: what one hardware layer job is, defined once.

A program is an array of descriptors in the arena (one contiguous DDR buffer). The core fetches them itself and
runs them in order after one start. Every address in a descriptor is a byte offset from the arena base, so a
packed model is relocatable. The SystemVerilog package and the C header are generated from `FIELDS` below
(see `sps_pynq.hw.codegen`); `docs/descriptor.md` explains the semantics with the arithmetic in
`docs/arithmetic.md`.

Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import List

DESC_WORDS = 32                 # 32-bit words per descriptor
DESC_BYTES = DESC_WORDS * 4     # 128 bytes, a multiple of every AXI data width we support
MAX_PATTERNS = 16               # pattern-mask words in a descriptor
ALIGN = 64                      # alignment of every buffer in the arena, in bytes
PARAM_RECORD_BYTES = 16         # per output row: bias int32, multiplier int32, shift int32, reserved int32
# Per-layer statistics record the core writes at STATS_OFFSET + layer * STATS_RECORD_BYTES: 32-bit words, in order.
STATS_WORDS = ("cycles", "mac_cycles", "stall_cycles", "reserved")
STATS_RECORD_BYTES = 4 * len(STATS_WORDS)


def decode_stats_records(raw: bytes, count: int) -> List[dict]:
    """The first `count` statistics records in `raw` (bytes from STATS_OFFSET on), one dict per layer."""
    words = struct.unpack_from(f"<{count * len(STATS_WORDS)}I", bytes(raw[:count * STATS_RECORD_BYTES]))
    n = len(STATS_WORDS)
    return [dict(zip(STATS_WORDS, words[j * n:(j + 1) * n])) for j in range(count)]


def align(n: int, a: int = ALIGN) -> int:
    """`n` rounded up to a multiple of `a` (buffers in the arena start on ALIGN bytes)."""
    return (n + a - 1) // a * a


class Op(enum.IntEnum):
    CONV = 0      # dense or PPS convolution (also fully connected layers, as a conv over the whole map)
    MAXPOOL = 1   # max over the window; out-of-bounds positions are ignored
    AVGPOOL = 2   # sum over the window (in-bounds positions), then requantized by mult/shift
    ADD = 3       # residual add: requant(a * mult + b * mult2)


class Flag(enum.IntFlag):
    RELU = 1 << 8   # clamp at zero before saturating
    PPS = 1 << 9    # CONV: weights follow the pattern table (else dense, K = kh * kw, P = 1)


# (name, word index, low bit, width, meaning). The single definition of the descriptor's bit layout.
FIELDS = [
    ("op",          0, 0, 4, "operation, one of Op"),
    ("relu",        0, 8, 1, "apply ReLU before saturation"),
    ("pps",         0, 9, 1, "CONV: PPS mode (pattern table) instead of dense"),
    ("share",       0, 10, 1, "PPS CONV: residue classes share row groups in slots of 2^slot_shift rows (layout.py)"),
    ("slot_shift",  0, 12, 3, "PPS CONV with share: log2 of the rows of a slot (filters of one class in a group)"),
    ("keep",        0, 16, 1, "shared CONV or ADD: also write the output into the activation buffer, in the "
                              "shared layout in the half of the slices the input is not in, for the next layer "
                              "(residency.py)"),
    ("resident",    0, 17, 1, "CONV, shared pool or ADD: the input (ADD: input 1) is in the activation buffer, "
                              "kept there by the layer before (`keep`): no input load"),
    ("in_half",     0, 18, 1, "with resident: the input sits in the upper half of each activation-buffer slice"),
    ("keep_skew",   0, 19, 1, "with keep: the kept map in the skewed bank mapping (odd rows' byte pairs swapped), "
                              "for a reader with an even horizontal stride"),
    ("in_offset",   1, 0, 32, "input feature map, int8 CHW, byte offset in the arena"),
    ("in_c",        2, 0, 32, "input channels"),
    ("in_h",        3, 0, 16, "input height"),
    ("in_w",        3, 16, 16, "input width"),
    ("out_offset",  4, 0, 32, "output feature map, int8 CHW, byte offset in the arena"),
    ("out_c",       5, 0, 32, "output channels"),
    ("out_h",       6, 0, 16, "output height"),
    ("out_w",       6, 16, 16, "output width"),
    ("kh",          7, 0, 8, "kernel / window height"),
    ("kw",          7, 8, 8, "kernel / window width"),
    ("stride_h",    7, 16, 8, "vertical stride"),
    ("stride_w",    7, 24, 8, "horizontal stride"),
    ("pad_top",     8, 0, 8, "rows of implicit zero padding above (out-of-bounds reads are zero)"),
    ("pad_left",    8, 8, 8, "columns of implicit zero padding on the left"),
    ("pad_bottom",  8, 16, 8, "informative: implied by in_h, out_h, kh, stride, pad_top"),
    ("pad_right",   8, 24, 8, "informative: implied by in_w, out_w, kw, stride, pad_left"),
    ("patterns",    9, 0, 8, "P: number of patterns (1 in dense mode)"),
    ("nnz",         9, 8, 8, "K: nonzero taps per kernel (kh * kw in dense mode)"),
    ("in_map_h",    9, 16, 16, "CONV/pools: rows of the whole input map in DDR, whose in_h rows from in_offset "
                               "on this layer reads (a band); channel planes are in_map_h * in_w bytes apart; "
                               "0 = in_h"),
    ("weight_offset", 10, 0, 32, "CONV: packed weight row groups, see layout.py"),
    ("param_offset",  11, 0, 32, "CONV: per-row bias/multiplier/shift records, see layout.py"),
    ("in2_offset",  12, 0, 32, "ADD: second input feature map"),
    ("mult",        13, 0, 32, "ADD: multiplier of input 1; AVGPOOL: multiplier"),
    ("mult2",       14, 0, 32, "ADD: multiplier of input 2"),
    ("shift",       15, 0, 8, "ADD/AVGPOOL: right shift, 0..63"),
    ("out_map_h",   15, 16, 16, "CONV/pools: rows of the whole output map in DDR, whose out_h rows from out_offset "
                                "on this layer writes; channel planes are out_map_h * out_w bytes apart; 0 = out_h"),
] + [(f"pattern{j}", 16 + j, 0, 9, f"3x3 mask of pattern {j} (bit t = tap ky*3+kx)") for j in range(MAX_PATTERNS)]

_FIELD_INDEX = {f[0]: f for f in FIELDS}


@dataclass
class Descriptor:
    op: Op
    in_offset: int = 0
    in_c: int = 0
    in_h: int = 0
    in_w: int = 0
    out_offset: int = 0
    out_c: int = 0
    out_h: int = 0
    out_w: int = 0
    kh: int = 1
    kw: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    relu: bool = False
    pps: bool = False
    share: bool = False       # residue classes share row groups (layout.py, "Shared classes")
    slot_shift: int = 0       # with share: a slot holds 2^slot_shift rows
    keep: bool = False        # the output also stays in the activation buffer for the next layer (layout.py)
    resident: bool = False    # the input is already in the activation buffer (the layer before kept it)
    in_half: bool = False     # with resident: the input is in the upper half of each slice
    keep_skew: bool = False   # with keep: written in the skewed mapping (for a reader with an even stride_w)
    patterns: int = 1
    nnz: int = 1
    weight_offset: int = 0
    param_offset: int = 0
    in2_offset: int = 0
    mult: int = 0
    mult2: int = 0
    shift: int = 0
    in_map_h: int = 0         # 0: the input is the whole map (in_h rows); else a band of a map in_map_h rows high
    out_map_h: int = 0        # 0: the output is the whole map (out_h rows); else a band of a map out_map_h rows high
    pattern_masks: List[int] = field(default_factory=list)   # P masks of 9 bits (PPS mode only)

    def _value(self, name: str) -> int:
        if name.startswith("pattern") and name[7:].isdigit():
            j = int(name[7:])
            return self.pattern_masks[j] if j < len(self.pattern_masks) else 0
        return int(getattr(self, name))

    def pack(self) -> bytes:
        words = [0] * DESC_WORDS
        for name, word, lo, width, _ in FIELDS:
            value = self._value(name)
            if not 0 <= value < (1 << width):
                raise ValueError(f"descriptor field {name}={value} does not fit in {width} bits")
            words[word] |= value << lo
        return struct.pack(f"<{DESC_WORDS}I", *words)

    @classmethod
    def unpack(cls, data: bytes) -> "Descriptor":
        if len(data) != DESC_BYTES:
            raise ValueError(f"a descriptor is {DESC_BYTES} bytes, got {len(data)}")
        words = struct.unpack(f"<{DESC_WORDS}I", data)
        values = {}
        for name, word, lo, width, _ in FIELDS:
            values[name] = (words[word] >> lo) & ((1 << width) - 1)
        masks = [values.pop(f"pattern{j}") for j in range(MAX_PATTERNS)]
        d = cls(op=Op(values.pop("op")), **{k: v for k, v in values.items()})
        d.relu, d.pps, d.share = bool(d.relu), bool(d.pps), bool(d.share)
        d.keep, d.resident, d.in_half = bool(d.keep), bool(d.resident), bool(d.in_half)
        d.keep_skew = bool(d.keep_skew)
        d.pattern_masks = masks[: d.patterns] if d.pps else []
        return d

    @property
    def in_chan_stride(self) -> int:
        """DDR bytes between the input's channel planes."""
        return (self.in_map_h or self.in_h) * self.in_w

    @property
    def out_chan_stride(self) -> int:
        """DDR bytes between the output's channel planes."""
        return (self.out_map_h or self.out_h) * self.out_w

    def dense_macs(self) -> int:
        """Multiply-accumulates a dense layer of this shape performs (CONV only)."""
        if self.op != Op.CONV:
            return 0
        return self.out_c * self.out_h * self.out_w * self.in_c * self.kh * self.kw

    def sparse_macs(self) -> int:
        """Nonzero multiply-accumulates (CONV only): K taps per kernel instead of kh * kw."""
        if self.op != Op.CONV:
            return 0
        return self.out_c * self.out_h * self.out_w * self.in_c * self.nnz


def pack_program(descs: List[Descriptor]) -> bytes:
    return b"".join(d.pack() for d in descs)


def unpack_program(data: bytes, count: int) -> List[Descriptor]:
    return [Descriptor.unpack(data[j * DESC_BYTES:(j + 1) * DESC_BYTES]) for j in range(count)]


def field_spec(name: str):
    return _FIELD_INDEX[name]
