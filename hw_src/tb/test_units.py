"""cocotb unit tests of the datapath blocks against small Python models of docs/arithmetic.md and layout.py:
the requantizer, the indexing unit, the PE array and the output aligner (each is its own toplevel)."""
from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from sps_pynq.hw.layout import taps_of_mask


def model_requant(v: int, m: int, s: int, relu: bool) -> int:
    y = (v * m + ((1 << (s - 1)) if s > 0 else 0)) >> s
    if relu:
        y = max(y, 0)
    return min(max(y, -128), 127)


def signed(value, bits):
    value = int(value)
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


async def clock(dut):
    cocotb.start_soon(Clock(dut.clk_i, 2, unit="ns").start())
    await ClockCycles(dut.clk_i, 1)


@cocotb.test()
async def test_requant(dut):
    """Random and corner values through the 2-stage requantizer: round half up, ReLU, saturation."""
    await clock(dut)
    rng = random.Random(int(os.environ.get("SPS_SEED", "1")))
    cases = [(5, 1, 1, 0), (-5, 1, 1, 0), (3, 1, 1, 0), (-3, 1, 1, 0), (0, 0, 0, 0), (127, 1, 0, 0),
             (128, 1, 0, 0), (-129, 1, 0, 0), (-200, 1, 0, 1), ((1 << 39) - 1, (1 << 31) - 1, 63, 0),
             (-(1 << 39), (1 << 31) - 1, 63, 0), (-(1 << 31), (1 << 31) - 1, 62, 0), (1000, 1 << 30, 40, 0)]
    for _ in range(400):
        s = rng.randint(0, 63)
        cases.append((rng.randint(-(1 << 39), (1 << 39) - 1) >> rng.randint(0, 39), rng.randint(0, (1 << 31) - 1),
                      s, rng.randint(0, 1)))
    pending = []
    for v, m, s, relu in cases + [(0, 0, 0, 0)] * 2:
        await FallingEdge(dut.clk_i)
        dut.v_i.value = v & ((1 << 40) - 1)
        dut.mult_i.value = m
        dut.shift_i.value = s
        dut.relu_i.value = relu
        pending.append((v, m, s, relu))
        if len(pending) > 2:
            case = pending.pop(0)
            got = signed(dut.y_o.value, 8)
            assert got == model_requant(*case[:3], bool(case[3])), f"requant{case}: got {got}"


def model_index(pps, masks, P, K, I, kw, r):
    """(ky, kx, entry, first, last) for every step of one tile, as layout.py stores the weights."""
    out = []
    for i in range(I):
        taps = taps_of_mask(masks[(r + i) % P]) if pps else list(range(K))
        for k in range(K):
            t = taps[k]
            ky, kx = (t // 3, t % 3) if pps else (t // kw, t % kw)
            out.append((ky, kx, i * K + k, i == 0 and k == 0, i == I - 1 and k == K - 1))
    return out


@cocotb.test()
async def test_index_unit(dut):
    """PPS (pattern (r + i) mod P, k-th set bit) and dense (k -> ky, kx) sequences, two tiles back to back."""
    await clock(dut)
    rng = random.Random(int(os.environ.get("SPS_SEED", "1")) + 1)
    dut.rst_ni.value = 0
    dut.init_i.value = 0
    dut.step_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    for trial in range(30):
        pps = trial % 3 != 0
        if pps:
            P, K = rng.randint(1, 16), rng.randint(1, 9)
            masks = [sum(1 << t for t in rng.sample(range(9), K)) for _ in range(P)]
            kw = 3
        else:
            kh, kw = rng.randint(1, 7), rng.randint(1, 7)
            P, K, masks = 1, kh * kw, [0]
        I, r = rng.randint(1, 6), rng.randint(0, P - 1)
        dut.pps_i.value = int(pps)
        dut.patterns_i.value = P
        dut.nnz_i.value = K
        dut.in_c_i.value = I
        dut.kw_i.value = kw
        dut.residue_i.value = r
        dut.masks_i.value = sum(m << (9 * j) for j, m in enumerate(masks))
        await FallingEdge(dut.clk_i)
        dut.init_i.value = 1
        await FallingEdge(dut.clk_i)
        dut.init_i.value = 0
        want = model_index(pps, masks, P, K, I, kw, r) * 2
        for n, (ky, kx, entry, first, last) in enumerate(want):
            # hold the step low now and then: the unit must only move on step_i
            while rng.random() < 0.2:
                dut.step_i.value = 0
                await FallingEdge(dut.clk_i)
            got = (int(dut.ky_o.value), int(dut.kx_o.value), int(dut.entry_o.value), bool(dut.first_o.value),
                   bool(dut.last_o.value))
            assert got == (ky, kx, entry, first, last), f"trial {trial} step {n}: got {got}, want {want[n]}"
            dut.step_i.value = 1
            await FallingEdge(dut.clk_i)
        dut.step_i.value = 0


@cocotb.test()
async def test_pe_array(dut):
    """Random tiles (first/last markers, column enables, idle cycles): shadow rows equal sum w[r] * a[c]
    (or, in max mode, the maximum of the enabled activations)."""
    await clock(dut)
    R, C = int(dut.Rows.value), int(dut.Cols.value)
    rng = random.Random(int(os.environ.get("SPS_SEED", "1")) + 2)
    dut.rst_ni.value = 0
    dut.valid_i.value = 0
    dut.max_mode_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    for tile in range(30):
        steps = rng.randint(1, 12)
        max_mode = tile % 3 == 2            # MAXPOOL: acc = max(acc, a) over enabled columns, from -128
        dut.max_mode_i.value = int(max_mode)
        acc = [[-128 if max_mode else 0] * C for _ in range(R)]
        for s in range(steps):
            while rng.random() < 0.3:
                await FallingEdge(dut.clk_i)
                dut.valid_i.value = 0
            w = [rng.randint(-128, 127) for _ in range(R)]
            a = [[rng.randint(-128, 127) for _ in range(C)] for _ in range(R)]    # per row (shared classes)
            en = [rng.random() < 0.8 for _ in range(C)]
            await FallingEdge(dut.clk_i)
            dut.valid_i.value = 1
            dut.first_i.value = int(s == 0)
            dut.last_i.value = int(s == steps - 1)
            dut.col_en_i.value = sum(int(e) << c for c, e in enumerate(en))
            dut.act_i.value = sum((a[r][c] & 0xFF) << (8 * (C * r + c)) for r in range(R) for c in range(C))
            dut.wgt_i.value = sum((x & 0xFF) << (8 * r) for r, x in enumerate(w))
            for r in range(R):
                for c in range(C):
                    if en[c]:
                        acc[r][c] = max(acc[r][c], a[r][c]) if max_mode else acc[r][c] + w[r] * a[r][c]
        await FallingEdge(dut.clk_i)
        dut.valid_i.value = 0
        for r in range(R):
            dut.shadow_row_i.value = r
            await RisingEdge(dut.clk_i)
            await FallingEdge(dut.clk_i)
            row = int(dut.shadow_row_o.value)
            got = [signed(row >> (32 * c) & 0xFFFFFFFF, 32) for c in range(C)]
            assert got == acc[r], f"tile {tile} row {r}: got {got}, want {acc[r]}"


def model_align(addr: int, n: int, beat: int):
    """The (beat address, strobe) pairs a segment of n bytes at addr spans, in order."""
    out = []
    for a0 in range(addr - addr % beat, addr + n, beat):
        out.append((a0, sum(1 << (b - a0) for b in range(max(a0, addr), min(a0 + beat, addr + n)))))
    return out


@cocotb.test()
async def test_out_align(dut):
    """Random segments (any address, 1..C bytes; C up to two beats) under random write back-pressure: the beats
    come out in order, each segment's bytes strobed at their addresses exactly once, nothing else strobed."""
    await clock(dut)
    beat, seg_bytes = int(dut.DataWidth.value) // 8, int(dut.SegBytes.value)
    rng = random.Random(int(os.environ.get("SPS_SEED", "1")) + 3)
    dut.rst_ni.value = 0
    dut.clear_i.value = 0
    dut.seg_valid_i.value = 0
    dut.beat_ready_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    segments = []
    for _ in range(200):
        n = rng.choice([seg_bytes, rng.randint(1, seg_bytes)])
        segments.append((rng.randrange(0, 1 << 16), n, [rng.randrange(256) for _ in range(n)]))
    want = [(a0, strb, addr, data) for addr, n, data in segments for a0, strb in model_align(addr, n, beat)]
    got, j = [], 0
    while j < len(segments):
        await FallingEdge(dut.clk_i)
        addr, n, data = segments[j]
        dut.seg_valid_i.value = 1
        dut.seg_addr_i.value = addr
        dut.seg_len_i.value = n
        dut.seg_data_i.value = sum(b << (8 * k) for k, b in enumerate(data))
        dut.beat_ready_i.value = int(rng.random() < 0.7)
        await ReadOnly()
        if int(dut.beat_valid_o.value) and int(dut.beat_ready_i.value):
            got.append((int(dut.beat_addr_o.value), int(dut.beat_strb_o.value), int(dut.beat_data_o.value)))
        if int(dut.seg_ready_o.value):
            j += 1
        await RisingEdge(dut.clk_i)
    await FallingEdge(dut.clk_i)
    dut.seg_valid_i.value = 0
    assert len(got) == len(want), f"{len(got)} beats, want {len(want)}"
    for k, ((ga, gs, gd), (wa, ws, addr, data)) in enumerate(zip(got, want)):
        assert (ga, gs) == (wa, ws), f"beat {k}: address {ga:#x} strobe {gs:#x}, want {wa:#x} {ws:#x}"
        for b in range(beat):
            if ws >> b & 1:
                assert gd >> (8 * b) & 0xFF == data[wa + b - addr], f"beat {k} byte {b}"
