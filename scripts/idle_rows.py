#!/usr/bin/env python3
"""Idle rows (issue 11, item 1): the ways to fill the array's rows, side by side on one network's 3x3 convolutions.

    python scripts/idle_rows.py --network resnet20        # CIFAR ResNet-20 at 3x32x32 on zcu104 (16 x 16)
    python scripts/idle_rows.py --network vgg16 --hw zcu104

Columns, summed over the network's PPS 3x3 convolutions (MAC efficiency = nonzero MACs / (cycles x R x C)):

  now          the core as it is, the layers encoded exactly as pruned (fill_rows=False, pack --no-fill-rows):
               modelled cycles (sps_pynq/hw/cycles.py, board DDR assumed)
  fill_rows    the same core, the layers re-encoded by compiler/fill_rows.py (merged or shared residue classes;
               the compiler's default): modelled
  2 pixel sets a bound, not a design that exists: idle rows compute a second tile of C pixels, fed by the
               activation banks' second read port (stride 1 only; ideal cycles, no loads)
  full rows    a bound, not a design that exists: several classes share a row group, each reading the input
               channel that gives it the same pattern at that step, from a buffer that delivers P channels of a
               pixel per read (ideal cycles with ceil(O / R) groups, no loads)

The bounds leave out every load and pipeline cycle, so they are upper limits for those designs; `now` and
`fill_rows` are the cycle model, which matches the RTL within a few per cent (docs/hardware.md, Cycle model).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sps_pynq.hw import cycles  # noqa: E402
from sps_pynq.hw.descriptor import Op  # noqa: E402


def compile_net(name: str, hw: str, fill_rows: bool):
    from sps_pynq import zoo
    from sps_pynq.compiler import compile_model
    shape = zoo.input_shape(name)
    calib = np.random.default_rng(0).standard_normal((4,) + shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(name, hw=hw, pps="8x4", first_layer_dense=True, fill_rows=fill_rows, calib=calib,
                             input_shape=shape)


def pps_convs(program):
    """(index, descriptor, model P, model K) of the program's PPS 3x3 convolutions (the model's table)."""
    meta = {m["name"]: m for m in program.metadata["layers"]}
    out = []
    for j, (info, d) in enumerate(zip(program.layers, program.descriptors())):
        m = meta.get(info.name.split("[band ")[0], {})
        if d.op == Op.CONV and m.get("masks"):
            out.append((j, d, int(m["P"]), int(m["K"])))
    return out


def bounds(d, P: int, K: int, hw) -> tuple:
    """Ideal cycles of the two designs that do not exist (see the module text) for one PPS descriptor."""
    tiles = -(-d.out_h * d.out_w // hw.cols)
    per_class = -(-d.out_c // P)
    groups_now = P * -(-per_class // hw.rows)
    sets = 2 if d.stride_w == 1 and per_class * 2 <= hw.rows else 1          # a second C-pixel tile per group
    two_sets = groups_now * -(-tiles // sets) * d.in_c * K
    full = -(-d.out_c // hw.rows) * tiles * d.in_c * K
    return two_sets, full


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--network", default="resnet20", help="a zoo network (default resnet20)")
    p.add_argument("--hw", default="zcu104")
    p.add_argument("--clock", type=float, default=150.0, help="core clock in MHz for frames/s (default 150)")
    args = p.parse_args(argv)
    plain, filled = compile_net(args.network, args.hw, False), compile_net(args.network, args.hw, True)
    hw = plain.hw
    slots = hw.rows * hw.cols
    convs = pps_convs(plain)
    macs = plain.layer_macs()
    needed = sum(macs[j] for j, *_ in convs)
    now = sum(cycles.layer_cycles(d, hw, cycles.ZCU104_DDR).total for _, d, _, _ in convs)
    fill_descs = filled.descriptors()
    fill = sum(cycles.layer_cycles(fill_descs[j], hw, cycles.ZCU104_DDR).total for j, *_ in pps_convs(filled))
    two = full = 0
    for _, d, P, K in convs:
        a, b = bounds(d, P, K, hw)
        two, full = two + a, full + b
    total_now = sum(c.total for c in cycles.program_cycles(plain, cycles.ZCU104_DDR))
    total_fill = sum(c.total for c in cycles.program_cycles(filled, cycles.ZCU104_DDR))
    print(f"{args.network}: {len(convs)} PPS 3x3 convolutions, {needed:,} nonzero MACs, {hw.describe()}")
    print(f"{'design':<14} {'cycles':>12} {'MAC eff':>8}  what")
    for name, c, what in (("now", now, "modelled"), ("fill_rows", fill, "modelled, compiler/fill_rows.py"),
                          ("2 pixel sets", two, "bound: ideal cycles, stride 1, second read port"),
                          ("full rows", full, "bound: ideal cycles, P channels a read")):
        print(f"{name:<14} {c:>12,} {needed / (c * slots):>8.1%}  {what}")
    print(f"whole network (modelled, board DDR): now {total_now:,} cycles = {cycles.fps(total_now, args.clock):,.1f} "
          f"frames/s; fill_rows {total_fill:,} = {cycles.fps(total_fill, args.clock):,.1f} frames/s at "
          f"{args.clock:g} MHz ({total_now / total_fill:.2f}x); weight image {len(plain.image):,} -> "
          f"{len(filled.image):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
