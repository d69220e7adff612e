"""cocotb entry point of the `rtl` backend: run one arena image through sps_top and dump the result.

Inputs (environment): SPS_ARENA (file with the arena bytes), SPS_PROG_OFFSET, SPS_NUM_LAYERS, SPS_STATS_OFFSET
(-1: no stats), SPS_TIMEOUT_CYCLES. Outputs: the arena after the run written back to SPS_ARENA, and SPS_RESULT
(JSON: error code, failing layer, counters, per-layer stats records).
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np

from sps_pynq.hw.descriptor import decode_stats_records
from sps_pynq.hw.regmap import CtrlBit
from sps_tb import ARENA_BASE, TB


@cocotb.test()
async def run_arena(dut):
    path = os.environ["SPS_ARENA"]
    arena = np.fromfile(path, dtype=np.uint8)
    prog_offset = int(os.environ["SPS_PROG_OFFSET"])
    num_layers = int(os.environ["SPS_NUM_LAYERS"])
    stats_offset = int(os.environ.get("SPS_STATS_OFFSET", "-1"))
    size = 1 << max(20, int(ARENA_BASE + arena.size - 1).bit_length())
    tb = TB(dut, ram_size=size)
    await tb.reset()
    tb.ram.write(ARENA_BASE, arena.tobytes())
    stats = stats_offset >= 0
    await tb.start(prog_offset, num_layers, max(stats_offset, 0), stats)
    try:
        await tb.wait_irq(int(os.environ.get("SPS_TIMEOUT_CYCLES", "200000000")), poll=256)
    except TimeoutError as e:
        regs = {name: await tb.read_reg(name) for name in ("CTRL", "ERROR_CODE", "CUR_LAYER", "CYCLES_LO")}
        with open(os.environ["SPS_RESULT"], "w") as f:
            json.dump({"timeout": str(e), "registers": regs}, f)
        return
    out = await tb.finish()
    after = np.frombuffer(tb.ram.read(ARENA_BASE, arena.size), dtype=np.uint8)
    after.tofile(path)
    out["layer_stats"] = decode_stats_records(after[stats_offset:].tobytes(), num_layers) if stats else []
    out["done"] = bool(out["ctrl"] & CtrlBit.DONE)
    with open(os.environ["SPS_RESULT"], "w") as f:
        json.dump({k: v for k, v in out.items()}, f)
