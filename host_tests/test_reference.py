"""The numpy reference against a literal, loop-by-loop reading of docs/arithmetic.md, on tiny random layers."""
import numpy as np
import pytest

from layer_factory import random_layer, random_program
from sps_pynq import reference as ref
from sps_pynq.hw import layout
from sps_pynq.hw.config import CONFIGS
from sps_pynq.hw.descriptor import Descriptor, Op


def _rq(v, M, S):
    R = (1 << (S - 1)) if S > 0 else 0
    return (v * M + R) >> S          # Python ints: exact, and >> floors


def _finish(y, relu):
    if relu:
        y = max(y, 0)
    return min(max(y, -128), 127)


def _literal(arena, d, W, b, M, S):
    """docs/arithmetic.md, one output value at a time, in Python integers."""
    fm = lambda off: arena[off:off + d.in_c * d.in_h * d.in_w].view(np.int8).reshape(d.in_c, d.in_h, d.in_w)
    x = fm(d.in_offset).astype(int)
    out = np.zeros((d.out_c, d.out_h, d.out_w), dtype=int)

    def window(y, xx):
        for ky in range(d.kh):
            for kx in range(d.kw):
                iy, ix = y * d.stride_h - d.pad_top + ky, xx * d.stride_w - d.pad_left + kx
                if 0 <= iy < d.in_h and 0 <= ix < d.in_w:
                    yield ky, kx, iy, ix

    for o, y, xx in np.ndindex(out.shape):
        if d.op == Op.CONV:
            acc = int(b[o]) + sum(int(W[o, i, ky, kx]) * x[i, iy, ix]
                                  for i in range(d.in_c) for ky, kx, iy, ix in window(y, xx))
            out[o, y, xx] = _finish(_rq(acc, int(M[o]), int(S[o])), d.relu)
        elif d.op == Op.MAXPOOL:
            out[o, y, xx] = _finish(max(x[o, iy, ix] for _, _, iy, ix in window(y, xx)), d.relu)
        elif d.op == Op.AVGPOOL:
            out[o, y, xx] = _finish(_rq(sum(x[o, iy, ix] for _, _, iy, ix in window(y, xx)), d.mult, d.shift),
                                    d.relu)
        else:
            a, b2 = x[o, y, xx], int(fm(d.in2_offset)[o, y, xx])
            R = (1 << (d.shift - 1)) if d.shift > 0 else 0
            out[o, y, xx] = _finish((a * d.mult + b2 * d.mult2 + R) >> d.shift, d.relu)
    return out


def test_requant_rounds_half_up_and_floors():
    # 5/2 = 2.5 -> 3, -5/2 = -2.5 -> -2, -7/4 = -1.75 -> -2
    assert ref.requant(5, 1, 1) == 3 and ref.requant(-5, 1, 1) == -2 and ref.requant(-7, 1, 2) == -2
    assert ref.requant(7, 3, 0) == 21
    v = np.array([2**31 - 1, -2**31])
    assert list(ref.requant(v, 2**31 - 1, 63)) == [_rq(int(a), 2**31 - 1, 63) for a in v]


def test_unpack_conv_inverts_layout_pack():
    rng = np.random.default_rng(1)
    hw = CONFIGS["small"]
    for P, K in [(1, 9), (3, 4), (16, 2), (5, 9)]:
        masks = [int(sum(1 << int(t) for t in rng.choice(9, K, replace=False))) for _ in range(P)]
        O, I = 7, 5
        W = rng.integers(-127, 128, (O, I, 3, 3)).astype(np.int8)
        for o in range(O):
            for i in range(I):
                keep = np.array([masks[(o + i) % P] >> t & 1 for t in range(9)], bool).reshape(3, 3)
                W[o, i][~keep] = 0
        b, M, S = rng.integers(-1000, 1000, O), rng.integers(0, 2**31, O), rng.integers(0, 64, O)
        wd, pd = layout.pack_weights(W, hw.rows, masks), layout.pack_params(b, M, S, hw.rows, P)
        arena = np.zeros(64 + len(wd) + len(pd), np.uint8)
        arena[64:64 + len(wd)] = np.frombuffer(wd, np.uint8)
        arena[64 + len(wd):] = np.frombuffer(pd, np.uint8)
        d = Descriptor(op=Op.CONV, in_c=I, out_c=O, kh=3, kw=3, pps=True, patterns=P, nnz=K, pattern_masks=masks,
                       weight_offset=64, param_offset=64 + len(wd))
        W2, b2, M2, S2 = ref.unpack_conv(arena, d, hw)
        assert (W2.reshape(O, I, 3, 3) == W).all() and (b2 == b).all() and (M2 == M).all() and (S2 == S).all()


@pytest.mark.parametrize("kind", ["pps", "dense", "fc", "maxpool", "avgpool", "gap", "add"])
def test_reference_matches_literal_spec(kind):
    rng = np.random.default_rng(["pps", "dense", "fc", "maxpool", "avgpool", "gap", "add"].index(kind))
    for n in range(12):
        hw = CONFIGS["small" if n % 2 else "zcu104"]
        arena, d = random_layer(rng, hw, op=kind, in_c=int(rng.integers(1, 5)), in_h=int(rng.integers(1, 8)),
                                in_w=int(rng.integers(1, 8)))
        before = arena.copy()
        ref.run_layer(arena, d, hw)
        n_out = d.out_c * d.out_h * d.out_w
        got = arena[d.out_offset:d.out_offset + n_out].view(np.int8).reshape(d.out_c, d.out_h, d.out_w)
        W, b, M, S = ref.unpack_conv(before, d, hw) if d.op == Op.CONV else (None,) * 4
        if W is not None:
            W = W.reshape(d.out_c, d.in_c, d.kh, d.kw)
        assert (got == _literal(before, d, W, b, M, S)).all(), d
        untouched = np.ones(arena.size, bool)
        untouched[d.out_offset:d.out_offset + n_out] = False
        assert (arena[untouched] == before[untouched]).all()


def test_factory_outputs_are_spread_not_saturated():
    rng = np.random.default_rng(7)
    hw = CONFIGS["zcu104"]
    values = []
    for _ in range(40):
        arena, d = random_layer(rng, hw, op="pps", relu=False)
        ref.run_layer(arena, d, hw)
        values.append(arena[d.out_offset:d.out_offset + d.out_c * d.out_h * d.out_w].view(np.int8))
    v = np.concatenate(values).astype(int)
    assert np.mean(np.abs(v) >= 127) < 0.3 and np.std(v) > 20


def test_program_runs_in_order():
    rng = np.random.default_rng(3)
    hw = CONFIGS["small"]
    arena, descs = random_program(rng, hw, 5)
    a1 = arena.copy()
    ref.run_program(a1, descs, hw)
    a2 = arena.copy()
    for d in descs:
        ref.run_layer(a2, d, hw)
    assert (a1 == a2).all()


def test_reference_rejects_layer_outside_arena():
    rng = np.random.default_rng(4)
    hw = CONFIGS["small"]
    arena, d = random_layer(rng, hw, op="maxpool")
    d.out_offset = arena.size - 1
    with pytest.raises(ValueError, match="outside the arena"):
        ref.run_layer(arena, d, hw)
