"""Random valid layers and small layer programs on an arena, for bit-exactness checks of numpy / C / RTL / board:
the tests (host_tests/layer_factory.py re-exports this module), the cocotb testbenches and `sps-pynq selftest`.

    arena, desc = random_layer(rng, hw, op="pps", in_c=5)          # one layer, inputs random, output garbage
    arena, descs = random_program(rng, hw, n_layers=4)             # a chain, with residual ADDs
    program = random_packed_program(rng, hw, n_layers=4)           # the same as a sps_pynq.program.Program
    descs = in_bands(rng, descs)                                   # CONV/pools cut into random row/channel bands

`op` is one of "pps", "dense", "fc", "maxpool", "avgpool", "gap", "add", an `Op` (CONV picks among pps, dense
and fc) or None (any). Any Descriptor field can be overridden by keyword (in_c, in_h, in_w, out_c, kh, kw,
stride_h, stride_w, pad_top, pad_left, patterns, nnz, relu, ...); strides and pads given once (`stride=2`,
`pad=1`) apply to both axes. `slot_shift=n` (pps only) makes a CONV with shared residue classes (descriptor
share, weights and parameters packed in shared groups: hw/layout.py); the caller picks a shape the rules allow
(layout.share_problem). Everything the layer does not write is filled with random bytes, so a model that
reads or writes the wrong place shows it. Requantization factors are drawn around the value that maps the
accumulator's spread onto the int8 range, so outputs are spread out and only partly saturated.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Tuple

import numpy as np

from ..hw import bands, layout
from ..hw.config import HwConfig
from ..hw.descriptor import ALIGN, DESC_BYTES, Descriptor, Op, pack_program
from ..program import STATS_RECORD_BYTES, LayerInfo, Program, TensorInfo

OP_KINDS = ("pps", "dense", "fc", "maxpool", "avgpool", "gap", "add")


class ArenaBuilder:
    """A bump allocator of ALIGN-aligned buffers, with their initial contents."""

    def __init__(self, start: int = 0):
        self.size = start
        self.chunks: List[Tuple[int, bytes]] = []

    def alloc(self, nbytes: int, data: Optional[bytes] = None) -> int:
        offset = (self.size + ALIGN - 1) // ALIGN * ALIGN
        self.size = offset + max(nbytes, 1)
        if data is not None:
            assert len(data) == nbytes
            self.chunks.append((offset, data))
        return offset

    def arena(self, rng: np.random.Generator, tail: int = ALIGN) -> np.ndarray:
        total = (self.size + tail + ALIGN - 1) // ALIGN * ALIGN
        arena = rng.integers(0, 256, size=total, dtype=np.uint8)   # garbage everywhere not written
        for offset, data in self.chunks:
            arena[offset:offset + len(data)] = np.frombuffer(data, dtype=np.uint8)
        return arena


class _Tensor:
    def __init__(self, offset, c, h, w):
        self.offset, self.c, self.h, self.w = offset, c, h, w

    @property
    def shape(self):
        return (self.c, self.h, self.w)


def _random_fmap(rng, builder, c, h, w, nonneg=False) -> _Tensor:
    low = 0 if nonneg else -128
    data = rng.integers(low, 128, size=c * h * w, dtype=np.int64).astype(np.int8).tobytes()
    return _Tensor(builder.alloc(c * h * w, data), c, h, w)


def _mult_shift(rng, factor: float) -> Tuple[int, int]:
    """The compiler's rule (S = 30 - floor(log2 f), M = round(f * 2^S)) applied to a randomly jittered factor."""
    f = factor * math.exp(rng.uniform(-1.0, 1.0))
    shift = int(min(max(30 - math.floor(math.log2(f)), 0), 63))
    mult = int(min(max(round(f * 2**shift), 0), 2**31 - 1))
    return mult, shift


def _out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def _pick_window(rng, h, w, kinds=(1, 3), pads=(0, 1), strides=(1, 2), ov=None):
    """Kernel, stride, pad for a map of h x w that leaves at least one output pixel and no all-padding window."""
    ov = ov or {}
    for _ in range(100):
        kh = ov.get("kh", int(rng.choice(kinds)))
        kw = ov.get("kw", kh)
        sh = ov.get("stride_h", ov.get("stride", int(rng.choice(strides))))
        sw = ov.get("stride_w", ov.get("stride", sh))
        ph = ov.get("pad_top", ov.get("pad", int(rng.choice(pads))))
        pw = ov.get("pad_left", ov.get("pad", ph))
        ph, pw = min(ph, kh - 1), min(pw, kw - 1)
        if "pad_top" in ov or "pad" in ov:
            ph = ov.get("pad_top", ov.get("pad"))
        if "pad_left" in ov or "pad" in ov:
            pw = ov.get("pad_left", ov.get("pad"))
        if h + 2 * ph >= kh and w + 2 * pw >= kw:
            return kh, kw, sh, sw, ph, pw
    raise ValueError(f"cannot fit a window on a {h}x{w} map with overrides {ov}")


def _window_desc(op, x: _Tensor, out_c, kh, kw, sh, sw, ph, pw, ov) -> Descriptor:
    oh, ow = ov.get("out_h", _out_size(x.h, kh, sh, ph)), ov.get("out_w", _out_size(x.w, kw, sw, pw))
    return Descriptor(op=op, in_offset=x.offset, in_c=x.c, in_h=x.h, in_w=x.w, out_c=out_c, out_h=oh, out_w=ow,
                      kh=kh, kw=kw, stride_h=sh, stride_w=sw, pad_top=ph, pad_left=pw,
                      pad_bottom=max(0, (oh - 1) * sh + kh - x.h - ph),
                      pad_right=max(0, (ow - 1) * sw + kw - x.w - pw))


def _conv(rng, hw: HwConfig, builder, x: _Tensor, kind: str, ov: dict) -> Descriptor:
    if kind == "pps":
        kh, kw, sh, sw, ph, pw = _pick_window(rng, x.h, x.w, kinds=(3,), ov={**ov, "kh": 3, "kw": 3})
        P = ov.get("patterns", int(rng.integers(1, hw.max_patterns + 1)))
        K = ov.get("nnz", int(rng.integers(1, 10)))
        masks = ov.get("pattern_masks")
        if masks is None:
            masks = []
            for _ in range(P):
                taps = rng.choice(9, size=K, replace=False)
                masks.append(int(sum(1 << int(t) for t in taps)))
    elif kind == "fc":
        kh, kw, sh, sw, ph, pw = x.h, x.w, 1, 1, 0, 0
        P, K, masks = 1, x.h * x.w, None
    else:
        kh, kw, sh, sw, ph, pw = _pick_window(rng, x.h, x.w, kinds=(1, 1, 3, 3, 3, 5, 7), pads=(0, 1, 2, 3), ov=ov)
        P, K, masks = 1, kh * kw, None
    out_c = ov.get("out_c", int(rng.integers(1, 3 * hw.rows + 6)))
    d = _window_desc(Op.CONV, x, out_c, kh, kw, sh, sw, ph, pw, ov)
    d.pps, d.patterns, d.nnz = kind == "pps", P, K
    d.pattern_masks = list(masks) if masks else []

    w = rng.integers(-127, 128, size=(out_c, x.c, kh, kw), dtype=np.int64)
    w[rng.random(w.shape) < ov.get("zero_fraction", 0.1)] = 0      # some zeros inside the patterns too
    if masks:
        for o in range(out_c):
            for i in range(x.c):
                keep = np.array([masks[(o + i) % P] >> t & 1 for t in range(9)], dtype=bool).reshape(3, 3)
                w[o, i][~keep] = 0                                  # projection onto the pattern table
    w = w.astype(np.int8)
    acc_std = 74.0 * 74.0 * math.sqrt(x.c * K)                      # spread of sum w * x for uniform int8
    bias = rng.integers(-int(2 * acc_std), int(2 * acc_std) + 1, size=out_c)
    ms = [_mult_shift(rng, 50.0 / acc_std) for _ in range(out_c)]
    mult = np.array([m for m, _ in ms])
    shift = np.array([s for _, s in ms])
    slot_shift = ov.get("slot_shift") if kind == "pps" else None
    if slot_shift is not None:
        d.share, d.slot_shift = True, slot_shift
    wdata = layout.pack_weights(w, hw.rows, d.pattern_masks or None, slot_shift)
    pdata = layout.pack_params(bias, mult, shift, hw.rows, P, slot_shift)
    d.weight_offset = builder.alloc(len(wdata), wdata)
    d.param_offset = builder.alloc(len(pdata), pdata)
    d.relu = ov.get("relu", bool(rng.integers(0, 2)))
    return d


def _pool(rng, x: _Tensor, kind: str, ov: dict) -> Descriptor:
    if kind == "gap":
        kh, kw, sh, sw, ph, pw = x.h, x.w, 1, 1, 0, 0
    else:
        kh, kw, sh, sw, ph, pw = _pick_window(rng, x.h, x.w, kinds=(1, 2, 3), ov=ov)
    d = _window_desc(Op.MAXPOOL if kind == "maxpool" else Op.AVGPOOL, x, x.c, kh, kw, sh, sw, ph, pw, ov)
    if kind != "maxpool":
        d.mult, d.shift = ov.get("mult"), ov.get("shift")
        if d.mult is None or d.shift is None:
            m, s = _mult_shift(rng, 1.0 / (kh * kw))
            d.mult = m if d.mult is None else d.mult
            d.shift = s if d.shift is None else d.shift
    d.relu = ov.get("relu", bool(rng.integers(0, 2)))
    return d


def _add(rng, a: _Tensor, b: _Tensor, ov: dict) -> Descriptor:
    d = Descriptor(op=Op.ADD, in_offset=a.offset, in2_offset=b.offset, in_c=a.c, in_h=a.h, in_w=a.w,
                   out_c=a.c, out_h=a.h, out_w=a.w)
    m1, s = _mult_shift(rng, 1.0)
    d.mult = ov.get("mult", m1)
    d.mult2 = ov.get("mult2", int(min(2**31 - 1, m1 * math.exp(rng.uniform(-0.7, 0.7)))))
    d.shift = ov.get("shift", s)
    d.relu = ov.get("relu", bool(rng.integers(0, 2)))
    return d


def _kind_of(rng, op) -> str:
    if op is None:
        return str(rng.choice(OP_KINDS))
    if isinstance(op, str):
        if op not in OP_KINDS:
            raise ValueError(f"op {op!r} not in {OP_KINDS}")
        return op
    op = Op(op)
    if op == Op.CONV:
        return str(rng.choice(["pps", "pps", "dense", "fc"]))
    return {Op.MAXPOOL: "maxpool", Op.AVGPOOL: str(rng.choice(["avgpool", "gap"])), Op.ADD: "add"}[op]


def _fits(hw: HwConfig, c, h, w, kind):
    if c * h * w > hw.act_buf_bytes:
        return False
    if kind == "fc" and (h * w > 255 or c * h * w * hw.rows > hw.weight_buf_bytes):   # nnz: 8 bits; one group
        return False
    return True


def _build(rng, hw, builder, kind, x: _Tensor, x2: Optional[_Tensor], ov) -> Tuple[Descriptor, _Tensor]:
    if kind in ("pps", "dense", "fc"):
        d = _conv(rng, hw, builder, x, kind, ov)
    elif kind == "add":
        d = _add(rng, x, x2 if x2 is not None else x, ov)
    else:
        d = _pool(rng, x, kind, ov)
    for k, v in ov.items():                  # explicit field overrides win
        if hasattr(d, k) and k not in ("op",):
            setattr(d, k, v)
    out = _Tensor(builder.alloc(d.out_c * d.out_h * d.out_w), d.out_c, d.out_h, d.out_w)
    d.out_offset = out.offset
    return d, out


def random_layer(rng: np.random.Generator, hw: HwConfig, op=None, **overrides) -> Tuple[np.ndarray, Descriptor]:
    """One random valid layer in a fresh arena: (arena uint8, Descriptor); the output region holds garbage."""
    kind = _kind_of(rng, op)
    for _ in range(100):
        c = overrides.get("in_c", int(rng.integers(1, 25)))
        h = overrides.get("in_h", int(rng.integers(1, 14)))
        w = overrides.get("in_w", int(rng.integers(1, 14)))
        if _fits(hw, c, h, w, kind):
            break
    builder = ArenaBuilder()
    x = _random_fmap(rng, builder, c, h, w)
    x2 = _random_fmap(rng, builder, c, h, w) if kind == "add" else None
    ov = {k: v for k, v in overrides.items() if k not in ("in_c", "in_h", "in_w")}
    d, _ = _build(rng, hw, builder, kind, x, x2, ov)
    return builder.arena(rng), d


def _program_layers(rng, hw, builder, n_layers, x: _Tensor):
    descs, tensors = [], [x]
    for _ in range(n_layers):
        x = tensors[-1]
        kind = str(rng.choice(["pps", "pps", "pps", "dense", "maxpool", "avgpool", "add"]))
        if kind in ("maxpool", "avgpool") and (x.h < 2 or x.w < 2):
            kind = "pps"
        x2 = None
        if kind == "add":
            same = [t for t in tensors[:-1] if t.shape == x.shape]
            x2 = same[int(rng.integers(len(same)))] if same else x
        ov = {}
        if kind in ("pps", "dense"):
            ov["out_c"] = int(rng.integers(1, 2 * hw.rows + 5))
            if x.h < 6 or x.w < 6:
                ov["stride"] = 1
        d, out = _build(rng, hw, builder, kind, x, x2, ov)
        descs.append(d)
        tensors.append(out)
    return descs, tensors


def in_bands(rng: np.random.Generator, descs: List[Descriptor], max_bands: int = 4) -> List[Descriptor]:
    """The same program with every CONV and pool cut into 1..max_bands bands at random boundaries: bands of
    output rows (any op), or of channels (pools, half the time). It computes exactly what `descs` computes."""
    out = []
    for d in descs:
        if d.op == Op.ADD:
            out.append(d)
            continue
        by_channel = d.op != Op.CONV and d.in_c > 1 and rng.random() < 0.5
        n = d.in_c if by_channel else d.out_h
        parts = int(rng.integers(1, min(max_bands, n) + 1))
        cuts = [0] + sorted(int(v) for v in rng.choice(np.arange(1, n), parts - 1, replace=False)) + [n]
        cut = bands.channel_band if by_channel else bands.row_band
        out += [cut(d, cuts[j], cuts[j + 1]) for j in range(parts)]
    return out


def random_program(rng: np.random.Generator, hw: HwConfig, n_layers: int = 4) -> Tuple[np.ndarray, List[Descriptor]]:
    """A chain of `n_layers` random layers (each reads the previous output; ADDs reuse an earlier tensor of the
    same shape): (arena uint8 with the first input filled in, descriptors)."""
    builder = ArenaBuilder()
    x = _random_fmap(rng, builder, int(rng.integers(1, 9)), int(rng.integers(5, 14)), int(rng.integers(5, 14)))
    descs, _ = _program_layers(rng, hw, builder, n_layers, x)
    return builder.arena(rng), descs


def random_packed_program(rng: np.random.Generator, hw: HwConfig, n_layers: int = 4,
                          in_shape: Optional[Tuple[int, int, int]] = None) -> Program:
    """A random chain as a `Program` (descriptors in the image at offset 0, input and output tensors named,
    a stats region), for Session/backends tests that need no compiler."""
    builder = ArenaBuilder(start=n_layers * DESC_BYTES)
    c, h, w = in_shape or (int(rng.integers(1, 9)), int(rng.integers(5, 14)), int(rng.integers(5, 14)))
    x = _Tensor(builder.alloc(c * h * w), c, h, w)               # filled by the user at run time
    descs, tensors = _program_layers(rng, hw, builder, n_layers, x)
    stats_offset = builder.alloc(n_layers * STATS_RECORD_BYTES)
    image = bytearray(builder.size)
    image[0:n_layers * DESC_BYTES] = pack_program(descs)
    for offset, data in builder.chunks:
        image[offset:offset + len(data)] = data
    out = tensors[-1]
    return Program(hw=hw, image=bytes(image), arena_size=(builder.size + ALIGN - 1) // ALIGN * ALIGN,
                   prog_offset=0,
                   layers=[LayerInfo(f"layer{j}_{d.op.name.lower()}", [], 0.05) for j, d in enumerate(descs)],
                   inputs=[TensorInfo("input", (c, h, w), 1.0 / 64, x.offset)],
                   outputs=[TensorInfo("output", out.shape, 0.05, out.offset)],
                   stats_offset=stats_offset, metadata={"source": "sps_pynq.testing.random_packed_program"})


def side_by_side(layers: List[Tuple[np.ndarray, List[Descriptor]]]) -> Tuple[np.ndarray, List[Descriptor]]:
    """Independent (arena, descriptors) pairs placed one after the other in one arena, their descriptors' offsets
    moved along: one program that runs them all (e.g. one RTL simulation for many cases)."""
    parts, descs, at = [], [], 0
    for arena, ds in layers:
        at = (at + ALIGN - 1) // ALIGN * ALIGN
        parts.append((at, arena))
        for d in ds:
            d = dataclasses.replace(d)
            for name in ("in_offset", "out_offset", "weight_offset", "param_offset", "in2_offset"):
                setattr(d, name, getattr(d, name) + at)
            descs.append(d)
        at += arena.size
    out = np.zeros((at + ALIGN - 1) // ALIGN * ALIGN, np.uint8)
    for offset, arena in parts:
        out[offset:offset + arena.size] = arena
    return out, descs


def as_program(arena: np.ndarray, descs: List[Descriptor], hw: HwConfig, names: Optional[List[str]] = None) -> Program:
    """An arena and its descriptors as a Program (descriptors and a stats region appended), for the backends."""
    prog_offset = (arena.size + ALIGN - 1) // ALIGN * ALIGN
    stats_offset = prog_offset + len(descs) * DESC_BYTES
    image = bytearray(stats_offset)
    image[:arena.size] = arena.tobytes()
    image[prog_offset:stats_offset] = pack_program(descs)
    d0, dn = descs[0], descs[-1]
    return Program(hw=hw, image=bytes(image), arena_size=stats_offset + len(descs) * STATS_RECORD_BYTES + ALIGN,
                   prog_offset=prog_offset,
                   layers=[LayerInfo((names or [])[j] if names else f"layer{j}", [], 0.05) for j in range(len(descs))],
                   inputs=[TensorInfo("input", (d0.in_c, d0.in_h, d0.in_w), 1.0, d0.in_offset)],
                   outputs=[TensorInfo("output", (dn.out_c, dn.out_h, dn.out_w), 1.0, dn.out_offset)],
                   stats_offset=stats_offset, metadata={"source": "sps_pynq.testing.layers.as_program"})
