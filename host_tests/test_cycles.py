"""The cycle model (sps_pynq/hw/cycles.py): its arithmetic on hand-computed cases, and agreement with the RTL's
own per-layer counters on random layers (MAC-issue cycles exact, totals within a few per cent)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sps_pynq.backends import rtl_build  # noqa: E402
import layer_factory as lf  # noqa: E402
from sps_pynq.hw import cycles  # noqa: E402
from sps_pynq.hw.config import get_config  # noqa: E402
from sps_pynq.hw.descriptor import Descriptor, Op  # noqa: E402

SMALL = get_config("small")          # 2 x 4 array, 64-bit AXI (8-byte beats), 16 KiB activation buffer
ZCU = get_config("zcu104")


def _conv(**kw) -> Descriptor:
    d = dict(op=Op.CONV, in_c=1, in_h=8, in_w=8, out_c=1, out_h=8, out_w=8, kh=3, kw=3, stride_h=1, stride_w=1,
             pad_top=1, pad_left=1, pad_bottom=1, pad_right=1, nnz=9)
    d.update(kw)
    return Descriptor(**d)


def test_stride_1_never_collides():
    mult = cycles.tap_multiplicity(_conv(), ZCU)
    assert mult.shape == (4, 9) and (mult == 1).all()


def test_skewed_bank_mapping_by_hand():
    # C = 4: plain, byte a in bank a mod 4; skewed (layers with an even stride_w), bit 0 of that flipped in odd rows
    # (rows 1 and 3 below hold their byte pairs swapped). Every row keeps one byte per bank either way.
    a = np.arange(16)
    assert list(cycles.act_bank(a, 4, skew=False)) == [0, 1, 2, 3] * 4
    assert list(cycles.act_bank(a, 4, skew=True)) == [0, 1, 2, 3, 1, 0, 3, 2] * 2
    # C addresses two apart hit C distinct banks from any start under the skew (not under the plain mapping,
    # nor under the skew (a + a / C) mod C, where a0 and a0 + 2C - 2 share a bank whenever a0 mod C >= 2).
    for C in (4, 16):
        for a0 in range(4 * C):
            assert len(set(cycles.act_bank(a0 + 2 * np.arange(C), C, skew=True))) == C
        assert len(set(cycles.act_bank(2 * np.arange(C), C, skew=False))) == C // 2
    rotate = lambda a: (a + a // 16) % 16                     # noqa: E731
    assert rotate(2) == rotate(2 + 2 * 15) == 2
    assert cycles.act_skew(_conv(stride_w=2)) and not cycles.act_skew(_conv())
    assert not cycles.act_skew(_conv(stride_w=3))


def test_stride_2_issues_one_cycle_per_step():
    # 8x8 -> 4x4, C = 4: a tile is one output row, columns x = 0..3 read input columns ix = 2x - 1 + kx of input
    # row iy, at bytes 8 iy + ix: image row iy is buffer rows 2 iy (even) and 2 iy + 1 (odd, pairs swapped).
    # kx = 1: ix = 0, 2, 4, 6 -> banks 0, 2, 0^1, 2^1 = 0, 2, 1, 3; kx = 0: ix = -1 (padding), 1, 3, 5 -> 1, 3, 0;
    # kx = 2: 1, 3, 0, 2. One column a bank: one cycle per step (two, with the plain mapping: banks b, b+2, b, b+2).
    d = _conv(out_h=4, out_w=4, stride_h=2, stride_w=2)
    assert (cycles.tap_multiplicity(d, SMALL) == 1).all()
    # 4x4 -> 2x2: the tile spans both output rows. Centre tap: bytes 0, 2 (row 0) and 8, 10 (row 2) -> banks
    # 0, 2, 0, 2: two columns a bank, which its two read ports serve in one cycle.
    d = _conv(in_h=4, in_w=4, out_h=2, out_w=2, stride_h=2, stride_w=2)
    assert list(cycles.act_bank(np.array([0, 2, 8, 10]), 4, skew=True)) == [0, 2, 0, 2]
    assert (cycles.tap_multiplicity(d, SMALL) == 1).all()
    # 1x1 stride 4 over 8x10 -> 2x3 (an even stride: skewed). Tile 0 = pixels (0,0) (0,1) (0,2) (1,0) at bytes
    # 0, 4, 8, 40 -> rows 0, 1, 2, 10 -> banks 0, 0^1, 0, 0: three columns on bank 0, two ports: 2 cycles.
    # Tile 1 = (1,1) (1,2) at 44 (row 11: bank 1), 48 (row 12: bank 0): 1 cycle.
    d = _conv(in_h=8, in_w=10, out_h=2, out_w=3, kh=1, kw=1, stride_h=4, stride_w=4, pad_top=0, pad_left=0,
              pad_bottom=0, pad_right=0, nnz=1)
    assert list(cycles.act_bank(np.array([0, 4, 8, 40, 44, 48]), 4, skew=True)) == [0, 1, 0, 0, 1, 0]
    assert cycles.tap_multiplicity(d, SMALL).ravel().tolist() == [2, 1]
    # The plane's buffer offset (channel i, a band's lead) changes which banks a step reads, never how many
    # columns share one: the model counts every plane as if it started at byte 0.
    for hw, shape in ((SMALL, dict(in_h=8, in_w=10, out_h=2, out_w=3, kh=1, kw=1, stride_h=4, stride_w=4, pad_top=0,
                                   pad_left=0, pad_bottom=0, pad_right=0, nnz=1)),
                      (ZCU, dict(in_h=14, in_w=14, out_h=7, out_w=7, stride_h=2, stride_w=2)),
                      (ZCU, dict(in_h=9, in_w=13, out_h=5, out_w=7, stride_h=2, stride_w=2)),
                      (ZCU, dict(in_h=9, in_w=9, out_h=7, out_w=7, pad_top=0, pad_left=0, pad_bottom=0, pad_right=0))):
        d = _conv(**shape)
        first = cycles.tap_multiplicity(d, hw)
        for base in range(1, 2 * hw.cols + 1):
            assert (cycles.tap_multiplicity(d, hw, base) == first).all()


def test_pps_group_issue_follows_the_pattern_of_each_channel():
    # P = 2 patterns: pattern 0 = the centre tap only, pattern 1 = the whole top row. Filter class r reads
    # pattern (r + i) mod 2 on channel i: with 3 channels, class 0 reads patterns 0, 1, 0 and class 1 reads 1, 0, 1.
    d = _conv(in_c=3, out_c=2, out_h=4, out_w=4, stride_h=2, stride_w=2, pps=True, patterns=2, nnz=1,
              pattern_masks=[1 << 4, 0b111])
    mult = cycles.tap_multiplicity(d, SMALL)
    centre, top = mult[:, 4], mult[:, 0:3].sum(axis=1)
    got = cycles.layer_cycles(d, SMALL)
    assert got.mac == int((2 * centre + top).sum() + (centre + 2 * top).sum())
    assert got.groups == 2 and got.tiles == 4


def test_add_arithmetic_by_hand():
    core = cycles.CoreTiming(layer=10, request=3, group_gap=0, tile_row=1, tile_drain=0, pool_channel=0,
                             add_chunk=7, add_row=2)
    mem = cycles.Memory("test", read_latency=20)
    d = Descriptor(op=Op.ADD, in_c=2, in_h=5, in_w=100, out_c=2, out_h=5, out_w=100)   # 1,000 bytes
    got = cycles.layer_cycles(d, SMALL, mem, core)
    control = 10 + (20 + 3 + 128 // 8)                    # layer + one read of the 128-byte descriptor
    loads = 20 + 3 + 125 * 2                              # input 1: 125 beats of 8 bytes, 2 buffer rows each
    stream = 20 + 3 + 125 * 2                             # input 2 streamed: 2 parts (rows) a beat
    compute = 7 + max(stream, 250 * 2)                    # one chunk, 250 rows of C = 4 written as they come
    assert got.parts == {"control": control, "act_load": loads, "compute": compute}
    assert got.total == control + loads + compute and got.mac == 0
    # rows faster than the stream: the stream sets the pace
    got = cycles.layer_cycles(d, SMALL, mem, dataclasses.replace(core, add_row=0.5))
    assert got.parts["compute"] == 7 + stream


def test_conv_arithmetic_by_hand():
    # 1x1 conv, 4 channels -> 2 filters (one group on R = 2 rows), 4x4 map: 4 tiles of C = 4 pixels, 4 steps each.
    core = cycles.CoreTiming(layer=0, request=0, group_gap=5, tile_row=3, tile_drain=1, pool_channel=0,
                             add_chunk=0, add_row=0)
    mem = cycles.Memory("test", read_latency=10)
    d = _conv(in_c=4, out_c=2, in_h=4, in_w=4, out_h=4, out_w=4, kh=1, kw=1, pad_top=0, pad_left=0,
              pad_bottom=0, pad_right=0, nnz=1)
    got = cycles.layer_cycles(d, SMALL, mem, core)
    drain = 2 * 3 + 1                                     # rows * tile_row + tile_drain = 7 > 4 issue cycles
    compute = 4 + 3 * drain + drain + 5                   # first tile, 3 tiles held by the drain, last drain, gap
    weights = (10 + 2 * 4) + (10 + 2 * 16 // 8)           # 2 beats of weights, 4 cycles each (R = 2 bytes a
    #                                                       cycle of 8-byte beats); 2 parameter records of 16 bytes
    assert got.mac == 16 and got.groups == 1 and got.tiles == 4
    assert got.parts["compute"] == compute and got.parts["weights"] == weights


def test_ideal_and_efficiency_helpers():
    d = _conv(in_c=16, out_c=32)
    assert cycles.ideal_cycles(d, ZCU) == 2 * 4 * 16 * 9
    assert cycles.mac_efficiency(d, 2 * 4 * 16 * 9, ZCU) == pytest.approx(32 * 16 * 9 * 64 / (2 * 4 * 16 * 9 * 256))
    assert cycles.fps(150_000, 150.0) == pytest.approx(1000.0)


@pytest.mark.skipif(rtl_build.setup_verilator() is None, reason="verilator not installed")
@pytest.mark.parametrize("config", ["small", "small_wide"])
def test_model_follows_the_rtl_counters(config):
    """Random CONV (PPS, dense, FC), pools and ADDs, some cut into bands, in one RTL run on a small array (and on
    one with more columns than an AXI beat has bytes)."""
    from sps_pynq.backends.rtl import RtlBackend
    hw = get_config(config)
    rng = np.random.default_rng(5)
    parts = [lf.random_layer(rng, hw, op=k) for k in ("pps", "dense", "fc", "maxpool", "avgpool", "add") * 2]
    arena, descs = lf.side_by_side([(a, [d]) for a, d in parts])
    arena2, descs2 = lf.random_program(rng, hw, n_layers=5)
    arena, descs = lf.side_by_side([(arena, descs), (arena2, lf.in_bands(rng, descs2))])
    rtl = RtlBackend(hw)
    rtl.load(lf.as_program(arena, descs, hw))
    rtl.run()
    measured = rtl.stats()["layers"]
    assert len(measured) == len(descs)
    for d, m in zip(descs, measured):
        model = cycles.layer_cycles(d, hw)
        what = f"{d.op.name} {d.in_c}x{d.in_h}x{d.in_w} -> {d.out_c}x{d.out_h}x{d.out_w} k{d.kh} s{d.stride_h}"
        assert model.mac == m["mac_cycles"], what
        err = model.total / m["cycles"] - 1
        assert abs(err) <= (0.05 if m["cycles"] >= 1000 else 0.15), f"{what}: model {model.total}, rtl {m['cycles']}"


def test_cycle_report_network_mode_totals_the_model():
    """scripts/cycle_report.py --network on the shipped demo model: every layer, labelled modelled, and the total
    is the cycle model's sum over the descriptors (board DDR latency assumed)."""
    import subprocess
    import sys
    from sps_pynq import model_file
    root = Path(__file__).resolve().parents[1]
    demo = root / "sps_pynq" / "demo" / "mnist_pps84.spsmodel"
    proc = subprocess.run([sys.executable, str(root / "scripts" / "cycle_report.py"), "--network", str(demo),
                           "--clock", "100"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    program = model_file.load(demo)
    total = sum(c.total for c in cycles.program_cycles(program, cycles.ZCU104_DDR))
    assert "MODELLED" in out and f"{total:,} with the assumed board DDR" in out
    assert f"{cycles.fps(total, 100.0):,.1f} frames/s" in out
    assert len([ln for ln in out.splitlines() if " conv " in ln]) >= 3
