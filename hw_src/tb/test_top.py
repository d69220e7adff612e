"""cocotb tests of sps_top: registers, every layer kind bit-exact against sps_pynq.reference, a small network,
back-pressure, resets in the middle of a run, error codes. The hardware configuration comes from SPS_HW."""
from __future__ import annotations

import dataclasses
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from sps_pynq.testing import layers as lf
from sps_pynq import reference
from sps_pynq.hw import layout
from sps_pynq.hw.config import get_config
from sps_pynq.hw.descriptor import Descriptor, Op
from sps_pynq.hw.regmap import CtrlBit, ErrorCode
from sps_tb import ARENA_BASE, TB, bursty_pause, first_difference, random_pause

HW = get_config(os.environ.get("SPS_HW", "small"))
SEED = int(os.environ.get("SPS_SEED", "1"))
N_PER_KIND = int(os.environ.get("SPS_N_PER_KIND", "2"))


async def make_tb(dut) -> TB:
    tb = TB(dut)
    await tb.reset()
    return tb


async def check_layer(tb: TB, arena, descs, label: str, stats=False) -> dict:
    want = arena.copy()
    reference.run_program(want, descs, HW)
    out = await tb.run(arena, descs, stats=stats)
    assert out["error_code"] == 0, f"{label}: error code {out['error_code']} ({ErrorCode(out['error_code']).text})"
    assert out["ctrl"] & CtrlBit.DONE and out["ctrl"] & CtrlBit.IDLE, f"{label}: CTRL={out['ctrl']:#x}"
    diff = first_difference(out["arena"], want, descs)
    assert diff is None, f"{label}: {diff}; descriptors {descs}"
    return out


async def check_parts(tb: TB, arena, d: Descriptor, parts, label: str) -> list:
    """Run `parts` (descriptors that together compute layer `d`, e.g. its bands) and compare the whole arena with
    the reference's run of `d`; the parts' statistics records."""
    want = arena.copy()
    reference.run_program(want, [d], HW)
    out = await tb.run(arena, parts, stats=True)
    assert out["error_code"] == 0, f"{label}: error {out['error_code']}"
    diff = first_difference(out["arena"], want, [d])
    assert diff is None, f"{label} in {len(parts)} descriptors: {diff}"
    return out["layer_stats"]


@cocotb.test()
async def test_registers(dut):
    """Identification and fingerprint registers equal the Python definitions; rw registers read back."""
    tb = await make_tb(dut)
    assert await tb.read_reg("HW_ID") == 0x31535053
    assert await tb.read_reg("HW_CONFIG") == HW.fingerprint, hex(await tb.read_reg("HW_CONFIG"))
    assert await tb.read_reg("HW_BUFFERS") == HW.buffers_word
    assert await tb.read_reg("CTRL") == CtrlBit.IDLE
    for name, value in (("ARENA_LO", 0x12345640), ("ARENA_HI", 0x7), ("PROG_OFFSET", 0x100),
                        ("NUM_LAYERS", 3), ("STATS_OFFSET", 0x2000), ("STATS_ENABLE", 1), ("GIE", 1), ("IER", 2)):
        await tb.write_reg(name, value)
        assert await tb.read_reg(name) == value, name
    assert await tb.read_reg("ERROR_CODE") == 0


@cocotb.test()
async def test_layers(dut):
    """Every layer kind, random shapes, bit-exact against the numpy reference (whole arena compared)."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED)
    for kind in lf.OP_KINDS:
        for n in range(N_PER_KIND):
            arena, d = lf.random_layer(rng, HW, op=kind)
            await check_layer(tb, arena, [d], f"{kind} #{n}")


@cocotb.test()
async def test_conv_shapes(dut):
    """Corner cases: stride 2 (serial column path), PPS with P > O, wide maps, 1x1, one output channel, FC;
    an ADD in several chunks, a padded strided maxpool, a global average pool."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 100)
    cases = [dict(op="pps", stride=2, in_h=9, in_w=11), dict(op="pps", patterns=HW.max_patterns, out_c=3),
             dict(op="pps", in_h=3, in_w=30, in_c=2, pad=1), dict(op="dense", kh=1, kw=1, pad=0, stride=1),
             dict(op="dense", kh=3, kw=3, pad=0, stride=1, out_c=1), dict(op="pps", nnz=9, in_h=1, in_w=1, pad=1),
             dict(op="dense", kh=5, kw=5, stride=2, pad=2, in_h=12, in_w=7), dict(op="fc", in_c=7, in_h=3, in_w=3),
             # ADD larger than half the activation buffer runs in several chunks
             dict(op="add", in_c=HW.act_buf_bytes // 2 // 400 + 1, in_h=20, in_w=20),
             dict(op="maxpool", kh=3, kw=3, stride=2, pad=1, in_h=9, in_w=9), dict(op="gap", in_c=3, in_h=13, in_w=13)]
    for case in cases:
        arena, d = lf.random_layer(rng, HW, **case)
        await check_layer(tb, arena, [d], str(case))


@cocotb.test()
async def test_network_with_stats(dut):
    """A small random network (4 layers, residual ADD possible) in one start; per-layer stats written."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 200)
    arena, descs = lf.random_program(rng, HW, n_layers=4)
    out = await check_layer(tb, arena, descs, "network", stats=True)
    stats = out["layer_stats"]
    dut._log.info("network: %s; counters %s; layer stats %s", [d.op.name for d in descs],
                  {k: out[k] for k in ("cycles", "mac_cycles", "stall_cycles", "bytes_rd", "bytes_wr")}, stats)
    assert all(s["cycles"] > 0 and s["reserved"] == 0 for s in stats), stats
    assert sum(s["cycles"] for s in stats) <= out["cycles"]
    assert sum(s["mac_cycles"] for s in stats) == out["mac_cycles"]
    for d, s in zip(descs, stats):
        assert s["mac_cycles"] <= s["cycles"]
        if d.op == Op.CONV:
            assert s["mac_cycles"] > 0
    assert out["stats_tail"] == bytes([0xA5]) * 64, "stats record overran"
    assert out["bytes_wr"] == sum(d.out_c * d.out_h * d.out_w for d in descs) + 16 * len(descs)
    assert out["bytes_rd"] > 0


@cocotb.test()
async def test_dense_prefetch(dut):
    """A dense 3x3 layer whose row group exactly fills half the weight buffer prefetches the next group while the
    current one computes; one input channel more does not fit half and loads every group before computing it.
    On zcu104 the fitting layer is VGG16's 512-channel one (512 x 9 x 16 B = half of 144 KiB)."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 250)
    fit_c = HW.weight_buf_bytes // (2 * 9 * HW.rows)        # largest I with I * 9 entries in half the buffer
    groups, side = 3, 8
    overhead = {}
    for in_c in (fit_c, fit_c + 1):
        arena, d = lf.random_layer(rng, HW, op="dense", in_c=in_c, in_h=side, in_w=side, out_c=groups * HW.rows,
                                   kh=3, kw=3, stride=1, pad=1)
        out = await check_layer(tb, arena, [d], f"dense I={in_c}", stats=True)
        ideal = layout.ideal_conv_cycles(d.out_c, in_c, 9, 1, side * side, HW.rows, HW.cols)
        overhead[in_c] = out["layer_stats"][0]["cycles"] - ideal
    group_entries = fit_c * 9      # a group load writes at most one R-byte entry a cycle
    dut._log.info("dense I=%d / I=%d: cycles beyond ideal %s; one group load is %d entries",
                  fit_c, fit_c + 1, overhead, group_entries)
    # Without prefetch, groups 2 and 3 each wait for their whole weight load: about 2 x group_entries more.
    assert overhead[fit_c + 1] - overhead[fit_c] > group_entries, overhead
    if HW.name == "zcu104":
        assert fit_c == 512, "the zcu104 weight buffer no longer holds two dense 512-channel row groups"


@cocotb.test()
async def test_backpressure(dut):
    """Random and bursty stalls on every AXI channel of the RAM: results unchanged."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 300)
    for j, gen in enumerate((lambda ch: random_pause(SEED * 10 + ch, 0.5), lambda ch: bursty_pause(SEED * 20 + ch))):
        tb.set_backpressure(gen)
        arena, descs = lf.random_program(rng, HW, n_layers=3)
        out = await check_layer(tb, arena, descs, f"backpressure {j}")
        assert out["stall_cycles"] > 0
        # shared classes and pools (planes into the slices in turn) and an ADD whose input 2 streams
        arena, descs = shared_and_add(rng)
        out = await check_layer(tb, arena, descs, f"backpressure {j}, shared layers and ADD")
        assert out["stall_cycles"] > 0
    tb.set_backpressure(None)


def shared_and_add(rng):
    """One program of three independent layers: a CONV with shared classes, a shared max pool, an ADD in chunks."""
    conv = lf.random_layer(rng, HW, op="pps", patterns=8, out_c=8, in_c=16, in_h=8, in_w=6, pad=1, kh=3, kw=3,
                           stride=1, slot_shift=0)
    pool = lf.random_layer(rng, HW, op="maxpool", kh=3, kw=3, stride=1, pad=1, in_c=12, in_h=4, in_w=8)
    pool[1].share = True
    add = lf.random_layer(rng, HW, op="add", in_c=HW.act_buf_bytes // 2 // 400 + 1, in_h=20, in_w=20)
    return lf.side_by_side([(a, [d]) for a, d in (conv, pool, add)])


@cocotb.test()
async def test_reset_mid_run(dut):
    """rst_ni in the middle of a run, then CTRL.SOFT_RESET in the middle of a run: each followed by a clean run."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 400)
    arena, d = lf.random_layer(rng, HW, op="pps", in_c=8, in_h=10, in_w=10)
    prog, stats = tb.place_program(arena, [d])
    await tb.start(prog, 1, stats)
    await ClockCycles(dut.clk_i, 300)
    assert await tb.read_reg("CTRL") & CtrlBit.START, "the run should still be going"
    await tb.reset()
    assert await tb.read_reg("CTRL") == CtrlBit.IDLE
    await check_layer(tb, arena, [d], "after rst_ni")

    await tb.start(prog, 1, stats)
    await ClockCycles(dut.clk_i, 500)
    await tb.write_reg("CTRL", CtrlBit.SOFT_RESET)
    for _ in range(200):
        if await tb.read_reg("CTRL") & CtrlBit.IDLE:
            break
        await ClockCycles(dut.clk_i, 10)
    assert await tb.read_reg("CTRL") & CtrlBit.IDLE, "soft reset did not return to idle"
    arena2, d2 = lf.random_layer(rng, HW, op="dense")
    await check_layer(tb, arena2, [d2], "after soft reset")

    # rst_ni while the shared layers or the streaming ADD run, then the same program clean
    arena3, descs3 = shared_and_add(rng)
    prog, stats = tb.place_program(arena3, descs3)
    for wait in (200, 1500):
        await tb.start(prog, len(descs3), stats)
        await ClockCycles(dut.clk_i, wait)
        assert await tb.read_reg("CTRL") & CtrlBit.START, f"the run should still be going after {wait} cycles"
        await tb.reset()
    await check_layer(tb, arena3, descs3, "shared layers and ADD after rst_ni")


@cocotb.test()
async def test_bands(dut):
    """Layers larger than the activation buffer run as bands (hw/bands.py split_rows: at least 3 here): 3x3
    PPS and dense, stride 1 and 2, 7x7 stride 2, 1x1 stride 2; pools and ADD over maps cut into random row or
    channel bands; each equal to the numpy reference on the whole layer, bit for bit."""
    from sps_pynq.hw import bands
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 700)
    side = 8 * int(np.ceil(np.sqrt(2.5 * HW.act_buf_bytes / 16 / 64)))      # 16 channels, ~2.5 buffers
    cases = [dict(op="pps", stride=1, pad=1), dict(op="dense", kh=3, kw=3, stride=2, pad=1),
             dict(op="dense", kh=7, kw=7, stride=2, pad=3), dict(op="dense", kh=1, kw=1, stride=2, pad=0)]
    for case in cases:
        arena, d = lf.random_layer(rng, HW, in_c=16, in_h=side, in_w=side + 3, out_c=2 * HW.rows + 1, **case)
        parts = bands.plan(d, HW)
        assert len(parts) >= 3, (case, len(parts))
        await check_parts(tb, arena, d, parts, f"{case} in bands")
    for n in range(4):                                  # pools, ADD, everything: random bands of random programs
        arena, descs = lf.random_program(rng, HW, n_layers=4)
        want = arena.copy()
        reference.run_program(want, descs, HW)
        parts = lf.in_bands(rng, descs)
        out = await tb.run(arena, parts)
        assert out["error_code"] == 0, f"program {n}: error {out['error_code']}"
        diff = first_difference(out["arena"], want, descs)
        assert diff is None, f"program {n} in bands {[(p.op.name, p.in_h, p.in_c) for p in parts]}: {diff}"


@cocotb.test()
async def test_stride_2(dut):
    """Stride-2 layers issue one cycle per (i, k) step (issue 11: the skewed bank mapping and two read ports a
    bank): 3x3/2 PPS and dense, 1x1/2, 7x7/2, maxpool 3x3/2 and 2x2/2, avgpool 3x3/2, one of them also in three
    row bands (a lead and a plane stride in the buffer). Each layer's MAC counter equals the ideal I*K cycles per
    tile and row group (pools: kh*kw per tile and channel) and the cycle model's MAC cycles; where the model
    counts bank conflicts (tiles over three or more output rows, stride 4) the counter equals the model, above
    the ideal. Every output bit-exact against the reference on the whole layer."""
    from sps_pynq.hw import bands, cycles
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 800)
    one_cycle = [dict(op="dense", kh=3, kw=3, stride=2, pad=1, in_c=4, in_h=12, in_w=12),
                 dict(op="pps", stride=2, pad=1, in_c=5, in_h=16, in_w=15),
                 dict(op="pps", stride=2, pad=1, in_c=3, in_h=13, in_w=11),
                 dict(op="dense", kh=1, kw=1, stride=2, pad=0, in_c=3, in_h=14, in_w=14),
                 dict(op="dense", kh=7, kw=7, stride=2, pad=3, in_c=3, in_h=16, in_w=16),
                 dict(op="maxpool", kh=3, kw=3, stride=2, pad=1, in_c=3, in_h=14, in_w=14),
                 dict(op="maxpool", kh=2, kw=2, stride=2, pad=0, in_c=3, in_h=10, in_w=10),
                 dict(op="avgpool", kh=3, kw=3, stride=2, pad=0, in_c=2, in_h=9, in_w=9)]
    conflicts = [dict(op="dense", kh=3, kw=3, stride=2, pad=0, in_c=3, in_h=7, in_w=4),
                 dict(op="dense", kh=1, kw=1, stride=4, pad=0, in_c=2, in_h=9, in_w=2),
                 dict(op="dense", kh=3, kw=3, stride=2, pad=0, in_c=2, in_h=11, in_w=8),
                 # one output column of 33 rows: a tile's bytes 8 apart, several a bank at any C up to 32
                 dict(op="dense", kh=3, kw=3, stride=2, pad=0, in_c=2, in_h=67, in_w=4)]
    above_ideal = 0
    for n, case in enumerate(one_cycle + conflicts):
        arena, d = lf.random_layer(rng, HW, **case)
        parts = [d]
        if n == 1:
            parts = [bands.row_band(d, 0, 3), bands.row_band(d, 3, 5), bands.row_band(d, 5, d.out_h)]
            assert any(p.in_offset % (HW.axi_data_bits // 8) for p in parts)
        for p, st in zip(parts, await check_parts(tb, arena, d, parts, str(case))):
            model, ideal = cycles.layer_cycles(p, HW).mac, cycles.ideal_cycles(p, HW)
            dut._log.info(f"{case} {p.in_h}x{p.in_w}->{p.out_h}x{p.out_w}: MAC cycles {st['mac_cycles']}, "
                          f"model {model}, ideal {ideal}")
            assert st["mac_cycles"] == model, f"{case}: MAC cycles {st['mac_cycles']}, model {model}"
            if case in one_cycle:
                assert st["mac_cycles"] == ideal, f"{case}: MAC cycles {st['mac_cycles']}, ideal {ideal}"
            above_ideal += st["mac_cycles"] > ideal
    assert above_ideal, "no conflict case with more MAC cycles than the ideal on this configuration"


@cocotb.test()
async def test_shared_classes(dut):
    """Shared residue classes (issue 11: several classes a row group, slot d reading channel i - d from the
    activation buffer's slices): layers with one and several slots a group, classes of unequal size (O not a
    multiple of P), two and more blocks of 8 channels, padding only across; every output bit-exact against the
    reference, MAC cycles = the ideal of the shared groups (one cycle a step). A shared layer that breaks a rule
    ends with BAD_SHAPE."""
    from sps_pynq.hw import cycles
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 900)

    # channel planes of a multiple of 16 bytes (a whole number of beats apart, the rule of shared layers)
    cases = [dict(patterns=8, out_c=8, in_c=8, in_h=4, in_w=8, pad=1),
             dict(patterns=8, out_c=2 * HW.rows, in_c=16, in_h=8, in_w=6, pad=1),
             dict(patterns=4, out_c=5, in_c=8, in_h=4, in_w=4, pad=1),
             dict(patterns=8, out_c=HW.rows * 4, in_c=24, in_h=16, in_w=3, pad=1, relu=True),
             dict(patterns=2, out_c=3, in_c=8, in_h=8, in_w=4, pad_top=0, pad_left=1, out_h=6),
             dict(patterns=8, out_c=12, in_c=8, in_h=2, in_w=16, pad=1, nnz=9)]
    for case in cases:
        if -(-case["out_c"] // case["patterns"]) > HW.rows:
            continue
        case = dict(case, slot_shift=layout.class_slot_shift(case["out_c"], case["patterns"]), stride=1, kh=3, kw=3)
        arena, d = lf.random_layer(rng, HW, op="pps", **case)
        assert layout.share_problem(d, HW) is None and d.share, (case, layout.share_problem(d, HW))
        out = await check_layer(tb, arena, [d], f"shared {case}", stats=True)
        mac, ideal = out["layer_stats"][0]["mac_cycles"], cycles.ideal_cycles(d, HW)
        dut._log.info(f"shared {case}: MAC cycles {mac}, ideal {ideal}, model {cycles.layer_cycles(d, HW).mac}")
        assert mac == ideal == cycles.layer_cycles(d, HW).mac, f"{case}: MAC cycles {mac}, ideal {ideal}"
    # in three row bands: each band's planes start off the beat (a lead) and lie in_map_h * in_w bytes apart
    from sps_pynq.hw import bands
    arena, d = lf.random_layer(rng, HW, op="pps", patterns=8, out_c=min(2 * HW.rows, 16), in_c=16, in_h=12,
                               in_w=4, pad=1, kh=3, kw=3, stride=1,
                               slot_shift=layout.class_slot_shift(min(2 * HW.rows, 16), 8))
    parts = [bands.row_band(d, 0, 4), bands.row_band(d, 4, 8), bands.row_band(d, 8, d.out_h)]
    assert any(p.in_offset % (HW.axi_data_bits // 8) for p in parts)
    assert all(layout.share_problem(p, HW) is None for p in parts)
    for p, st in zip(parts, await check_parts(tb, arena, d, parts, "shared layer in bands")):
        assert st["mac_cycles"] == cycles.ideal_cycles(p, HW), (p, st)
    # shared pools: a group of min(R, 8) channels, row r reading slice r of a block (stride 1 'same', or one
    # output pixel); the last block partial
    for case in (dict(op="gap", in_c=16, in_h=4, in_w=4), dict(op="gap", in_c=13, in_h=8, in_w=2),
                 dict(op="maxpool", kh=3, kw=3, stride=1, pad=1, in_c=12, in_h=4, in_w=8),
                 dict(op="avgpool", kh=3, kw=3, stride=1, pad=1, in_c=9, in_h=8, in_w=6),
                 dict(op="maxpool", kh=2, kw=2, stride=1, pad=1, in_c=8, in_h=2, in_w=8, out_h=3, out_w=8)):
        arena, d = lf.random_layer(rng, HW, **case)
        d.share = True
        assert layout.share_problem(d, HW) is None, (case, layout.share_problem(d, HW))
        out = await check_layer(tb, arena, [d], f"shared pool {case}", stats=True)
        lanes = layout.shared_pool_channels(HW.rows)
        want_mac = -(-d.in_c // lanes) * -(-d.out_h * d.out_w // HW.cols) * d.kh * d.kw
        mac = out["layer_stats"][0]["mac_cycles"]
        dut._log.info(f"shared pool {case}: MAC cycles {mac}, ideal {want_mac}")
        assert mac == want_mac == cycles.ideal_cycles(d, HW), (case, mac, want_mac, cycles.ideal_cycles(d, HW))
    # rules, on a valid shared layer changed afterwards: a class larger than its slot, input channels not a
    # multiple of 8, stride 2, out_w != in_w, P not dividing 8
    breaks = (dict(slot_shift=0), dict(in_c=6), dict(stride_h=2, stride_w=2), dict(out_w=7), dict(patterns=3))
    for change in breaks:
        arena, d = lf.random_layer(rng, HW, op="pps", patterns=4, out_c=8, in_c=8, in_h=4, in_w=8, pad=1, kh=3,
                                   kw=3, stride=1, slot_shift=1)
        for name, value in change.items():
            setattr(d, name, value)
        d.pattern_masks = d.pattern_masks[:d.patterns]
        assert layout.share_problem(d, HW) is not None, change
        await expect_error(tb, arena, [d], ErrorCode.BAD_SHAPE)
    arena, d = lf.random_layer(rng, HW, op="maxpool", kh=3, kw=3, stride=2, pad=1, in_c=8, in_h=8, in_w=8)
    d.share = True                                          # a strided pool cannot share
    assert layout.share_problem(d, HW) is not None
    await expect_error(tb, arena, [d], ErrorCode.BAD_SHAPE)


def kept_chain(rng):
    """Layers chained through the activation buffer (hw/residency.py), on one arena: shared CONV (keep) -> shared
    CONV (resident in half 1, keep) -> ADD of that and the first CONV's output (resident in half 0, keep) ->
    shared global pool (resident in half 1); an ADD loaded flat (keep) -> shared CONV (resident in half 1, keep)
    -> dense 3x3 CONV (resident in half 0); an ADD (keep, skewed) -> PPS 3x3 stride-2 CONV without shared classes
    (resident in half 1, skewed reads). Planes of a multiple of C and of the beat. Returns (arena, chain)."""
    C = 16
    H, W = (4, 8) if HW.cols <= 8 else (8, 8)
    conv = dict(op="pps", stride=1, pad=1, patterns=8, out_c=C, in_c=C, in_h=H, in_w=W, nnz=4,
                slot_shift=layout.class_slot_shift(C, 8))
    fmap = dict(in_c=C, in_h=H, in_w=W)
    parts = [lf.random_layer(rng, HW, **conv), lf.random_layer(rng, HW, **conv),
             lf.random_layer(rng, HW, op="add", **fmap), lf.random_layer(rng, HW, op="gap", **fmap),
             lf.random_layer(rng, HW, op="add", **fmap), lf.random_layer(rng, HW, **conv),
             lf.random_layer(rng, HW, op="dense", kh=3, kw=3, stride=1, pad=1, out_c=5, **fmap),
             lf.random_layer(rng, HW, op="add", **fmap),
             lf.random_layer(rng, HW, op="pps", kh=3, kw=3, stride=2, pad=1, patterns=4, nnz=4, out_c=2 * HW.rows + 1,
                             **fmap)]
    arena, (a, b, add, gap, add0, c, dense, add1, s2) = lf.side_by_side([(x, [d]) for x, d in parts])
    r = dataclasses.replace
    a = r(a, keep=True)
    b = r(b, in_offset=a.out_offset, resident=True, in_half=True, keep=True)
    add = r(add, in_offset=b.out_offset, in2_offset=a.out_offset, resident=True, in_half=False, keep=True)
    gap = r(gap, in_offset=add.out_offset, share=True, resident=True, in_half=True)
    add0 = r(add0, keep=True)
    c = r(c, in_offset=add0.out_offset, resident=True, in_half=True, keep=True)
    dense = r(dense, in_offset=c.out_offset, resident=True, in_half=False)
    add1 = r(add1, keep=True, keep_skew=True)
    s2 = r(s2, in_offset=add1.out_offset, resident=True, in_half=True)
    return arena, [a, b, add, gap, add0, c, dense, add1, s2]


@cocotb.test()
async def test_kept_outputs(dut):
    """Kept outputs (keep / resident / in_half): a chain bit-exact with the reference, its resident layers faster
    than the same layers loading their inputs, also under back-pressure; broken chains end with BAD_SHAPE, and a
    new run forgets what the run before kept (also where C is wider than the beat: kept rows of C bytes)."""
    from sps_pynq.hw import residency
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 1000)
    arena, chain = kept_chain(rng)
    r = dataclasses.replace
    assert all(residency.problem(p, d, HW) is None for p, d in zip([None] + chain[:-1], chain))
    out = await check_layer(tb, arena, chain, "kept chain", stats=True)
    plain = [r(d, keep=False, resident=False, in_half=False, keep_skew=False) for d in chain]
    ref = await check_layer(tb, arena, plain, "the chain unchained", stats=True)
    for d, st, st0 in zip(chain, out["layer_stats"], ref["layer_stats"]):
        dut._log.info(f"{d.op.name} keep={d.keep} resident={d.resident}: {st['cycles']} cycles, unchained "
                      f"{st0['cycles']}")
        if d.resident:
            assert st["cycles"] < st0["cycles"], (d, st, st0)
    tb.set_backpressure(lambda ch: random_pause(SEED * 30 + ch, 0.5))
    await check_layer(tb, arena, chain, "kept chain under back-pressure")
    tb.set_backpressure(None)
    a, b = chain[0], chain[1]
    dense = lf.random_layer(rng, HW, op="dense", in_c=4, in_h=4, in_w=8)[1]
    add1, s2 = chain[-2:]
    for label, descs in (("resident first", [b]), ("wrong half", [a, r(b, in_half=False)]),
                         ("kept unskewed, read skewed", [r(add1, keep_skew=False), s2]),
                         ("not kept before", [r(a, keep=False), b]), ("other map", [a, r(b, in_c=8)]),
                         ("keep on a plain CONV", [r(dense, keep=True)])):
        assert any(residency.problem(p, d, HW) for p, d in zip([None] + descs[:-1], descs)), label
        await expect_error(tb, arena, descs, ErrorCode.BAD_SHAPE)
    await check_layer(tb, arena, [a], "a kept output, the run ends")
    await expect_error(tb, arena, [b], ErrorCode.BAD_SHAPE)        # a new run: nothing kept
    await check_layer(tb, arena, chain, "kept chain after the errors")


async def expect_error(tb: TB, arena, descs, code: ErrorCode, base=None) -> None:
    kwargs = {} if base is None else {"base": base}
    out = await tb.run(arena, descs, **kwargs)
    assert out["error_code"] == code, f"want {code.name}, got {out['error_code']}"
    assert out["ctrl"] & CtrlBit.ERROR and out["ctrl"] & CtrlBit.DONE and out["ctrl"] & CtrlBit.IDLE
    assert out["isr"] == 3


@cocotb.test()
async def test_errors(dut):
    """Bad descriptors stop the run with the right ERROR_CODE (never a hang); the next run is clean."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 500)
    arena, d = lf.random_layer(rng, HW, op="pps")
    good = Descriptor.unpack(d.pack())

    bad = Descriptor.unpack(d.pack())
    bad.op = Op.CONV
    raw = bytearray(bad.pack())
    raw[0] = 7                                          # op 7 does not exist
    from sps_pynq.hw.descriptor import DESC_BYTES      # noqa: F401  (documenting the size of `raw`)

    class Raw(Descriptor):
        def pack(self):
            return bytes(raw)
    await expect_error(tb, arena, [Raw(op=Op.CONV)], ErrorCode.BAD_OP)

    big = Descriptor.unpack(d.pack())
    big.in_c, big.in_h, big.in_w = 64, 64, (HW.act_buf_bytes // 4096) + 1
    await expect_error(tb, arena, [big], ErrorCode.ACT_BUF_OVERFLOW)

    wide = Descriptor.unpack(d.pack())
    wide.pps, wide.patterns, wide.nnz, wide.kh, wide.kw = False, 1, 9, 3, 3
    wide.in_c, wide.in_h, wide.in_w = HW.weight_buf_bytes // (9 * HW.rows) + 1, 1, 1
    await expect_error(tb, arena, [wide], ErrorCode.WEIGHT_BUF_OVERFLOW)

    shape = Descriptor.unpack(d.pack())
    shape.nnz = 0
    await expect_error(tb, arena, [shape], ErrorCode.BAD_SHAPE)

    mis = Descriptor.unpack(d.pack())
    mis.weight_offset += 1                              # (a CONV's maps may start anywhere: bands do)
    await expect_error(tb, arena, [mis], ErrorCode.MISALIGNED)
    tall = Descriptor.unpack(d.pack())
    tall.in_map_h = tall.in_h - 1                       # a band higher than its map
    await expect_error(tb, arena, [tall], ErrorCode.BAD_SHAPE)
    await expect_error(tb, arena, [good], ErrorCode.MISALIGNED, base=ARENA_BASE + 4)

    # SLVERR on a read (the input map) and on a write (the output map)
    tb.poison = (ARENA_BASE + good.in_offset + 8, ARENA_BASE + good.in_offset + 9)
    await expect_error(tb, arena, [good], ErrorCode.AXI_ERROR)
    tb.poison = (ARENA_BASE + good.out_offset + 1, ARENA_BASE + good.out_offset + 2)
    await expect_error(tb, arena, [good], ErrorCode.AXI_ERROR)
    tb.poison = None

    # SLVERR in the third plane of a band's input, whose later planes are requested while earlier ones arrive:
    # the error, the beats already requested swallowed, then the same band runs clean
    from sps_pynq.hw import bands
    arena_b, conv = lf.random_layer(rng, HW, op="dense", kh=3, kw=3, stride=1, pad=1, in_c=5, in_h=12, in_w=12)
    band = bands.row_band(conv, 2, 6)                    # input rows 1..6 of every plane
    bad_byte = ARENA_BASE + conv.in_offset + 2 * conv.in_h * conv.in_w + 3 * conv.in_w + 5
    tb.poison = (bad_byte, bad_byte + 1)
    await expect_error(tb, arena_b, [band], ErrorCode.AXI_ERROR)
    tb.poison = None
    await check_layer(tb, arena_b, [band], "a band after a read error in its input")

    # two good layers after a failing one: the failing index is reported, the clean run works
    out = await tb.run(arena, [good, shape])
    assert out["error_code"] == ErrorCode.BAD_SHAPE and out["cur_layer"] == 1
    await check_layer(tb, arena, [good], "clean run after errors")
