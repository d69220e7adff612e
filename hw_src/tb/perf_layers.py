"""cocotb module: cycles of a few CONV layers on sps_top against the ideal (I*K cycles per tile of C pixels,
summed over row groups), each checked bit-exact against sps_pynq.reference.

    SPS_HW=zcu104 python hw_src/tb/rtl_build.py zcu104 perf_layers
CASES (environment, a Python literal: a list of sps_pynq.testing.layers.random_layer keyword dicts, e.g.
`[{"op": "dense", "in_c": 8}]`) overrides the default cases.
"""
import ast
import math
import os
import cocotb
import numpy as np
from sps_pynq.testing import layers as lf
from sps_pynq import reference
from sps_pynq.hw import layout
from sps_pynq.hw.config import get_config
from sps_pynq.hw.descriptor import Op
from sps_tb import TB

HW = get_config(os.environ.get("SPS_HW", "zcu104"))
DEFAULT_CASES = [dict(op="pps", patterns=8, nnz=4, in_c=64, in_h=14, in_w=14, out_c=128, pad=1, stride=1),
                 dict(op="dense", kh=3, kw=3, in_c=64, in_h=14, in_w=14, out_c=128, pad=1, stride=1),
                 dict(op="dense", kh=3, kw=3, in_c=64, in_h=28, in_w=28, out_c=32, pad=1, stride=2),
                 dict(op="dense", kh=1, kw=1, in_c=64, in_h=28, in_w=28, out_c=32, pad=0, stride=2),
                 dict(op="maxpool", kh=2, kw=2, stride=2, pad=0, in_c=64, in_h=28, in_w=28)]


@cocotb.test()
async def perf(dut):
    tb = TB(dut)
    await tb.reset()
    rng = np.random.default_rng(1)
    for case in ast.literal_eval(os.environ["CASES"]) if "CASES" in os.environ else DEFAULT_CASES:
        arena, d = lf.random_layer(rng, HW, **case)
        want = arena.copy()
        reference.run_program(want, [d], HW)
        out = await tb.run(arena, [d], timeout_cycles=5_000_000)
        ok = np.array_equal(out["arena"], want)
        if d.op == Op.CONV:
            ideal = layout.ideal_conv_cycles(d.out_c, d.in_c, d.nnz, d.patterns if d.pps else 1, d.out_h * d.out_w,
                                             HW.rows, HW.cols)
        else:   # pools: one channel per group, one window tap per cycle
            ideal = d.in_c * math.ceil(d.out_h * d.out_w / HW.cols) * d.kh * d.kw
        dut._log.info(f"CASE {case} ok={ok} err={out['error_code']} cycles={out['cycles']} mac={out['mac_cycles']} "
              f"stall={out['stall_cycles']} ideal={ideal} util={ideal / out['cycles']:.3f}")
        assert ok and out["error_code"] == 0, f"{case}: wrong result"
