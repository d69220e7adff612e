#!/usr/bin/env python3
"""The cycle model (sps_pynq/hw/cycles.py) against the RTL on a fixed set of layers, and the fit of its constants.

    python scripts/cycle_model_fit.py                 # run the layers on the rtl backend, print model vs RTL
    python scripts/cycle_model_fit.py --fit           # ... and fit CoreTiming + the testbench's read latency
    python scripts/cycle_model_fit.py --save F.json   # keep the measurements; --load F.json reuses them

The layers (seed 7): on the `small` array, 10 random 6-layer programs (every other one cut into random row and
channel bands) and 4 x 8 random single layers of every kind; on `zcu104`, 18 hand-picked layers (PPS and dense
3x3 at stride 1 and 2, 7x7/2, 1x1/2, 1x1, deep 2x2 and 4x4 maps, pools, global average pool, ADDs) and three
layers cut into bands by hw/bands.plan (72x72 and 64x64 maps), and five shared layers (classes: ResNet-20's first
stage, 20 filters, a banded 64 x 56 x 56; pools: a global average pool, a 3x3 max pool). Each layer's cycles and
MAC cycles come from the core's per-layer statistics records. About 3 minutes of simulation on a free 2-core
machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "host_tests"))

import layer_factory as lf  # noqa: E402
from sps_pynq.hw import bands, cycles  # noqa: E402
from sps_pynq.hw.config import get_config  # noqa: E402
from sps_pynq.hw.descriptor import Descriptor, Op  # noqa: E402

ZCU_CASES = [
    dict(op="pps", patterns=8, nnz=4, in_c=64, in_h=14, in_w=14, out_c=128, pad=1, stride=1),
    dict(op="dense", kh=3, kw=3, in_c=64, in_h=14, in_w=14, out_c=128, pad=1, stride=1),
    dict(op="dense", kh=3, kw=3, in_c=32, in_h=28, in_w=28, out_c=32, pad=1, stride=2),
    dict(op="pps", patterns=8, nnz=4, in_c=32, in_h=28, in_w=28, out_c=64, pad=1, stride=2),
    dict(op="dense", kh=1, kw=1, in_c=64, in_h=28, in_w=28, out_c=32, pad=0, stride=2),
    dict(op="dense", kh=7, kw=7, in_c=3, in_h=32, in_w=32, out_c=64, pad=3, stride=2),
    dict(op="dense", kh=3, kw=3, in_c=3, in_h=32, in_w=32, out_c=16, pad=1, stride=1),
    dict(op="pps", patterns=8, nnz=4, in_c=16, in_h=16, in_w=16, out_c=16, pad=1, stride=1),
    dict(op="pps", patterns=8, nnz=4, in_c=256, in_h=4, in_w=4, out_c=256, pad=1, stride=1),
    dict(op="pps", patterns=8, nnz=4, in_c=512, in_h=2, in_w=2, out_c=512, pad=1, stride=1),
    dict(op="dense", kh=1, kw=1, in_c=256, in_h=7, in_w=7, out_c=64, pad=0, stride=1),
    dict(op="maxpool", kh=2, kw=2, stride=2, pad=0, in_c=64, in_h=28, in_w=28),
    dict(op="maxpool", kh=3, kw=3, stride=2, pad=1, in_c=64, in_h=28, in_w=28),
    dict(op="avgpool", kh=7, kw=7, stride=1, pad=0, in_c=128, in_h=7, in_w=7),
    dict(op="add", in_c=64, in_h=28, in_w=28),
    dict(op="add", in_c=32, in_h=60, in_w=60),
    dict(op="pps", patterns=8, nnz=4, in_c=128, in_h=8, in_w=8, out_c=128, pad=1, stride=1),
    dict(op="dense", kh=3, kw=3, in_c=128, in_h=8, in_w=8, out_c=128, pad=1, stride=1),
]
# Shared classes and pools (descriptor `share`): ResNet-20's first stage, a class size not a power of two, a
# ResNet-18 (224) first-stage layer in bands, a shared global average pool and a shared 3x3 max pool.
ZCU_SHARED = [
    dict(op="pps", patterns=8, nnz=4, in_c=16, in_h=32, in_w=32, out_c=16, pad=1, stride=1, slot_shift=1),
    dict(op="pps", patterns=8, nnz=4, in_c=64, in_h=16, in_w=16, out_c=20, pad=1, stride=1, slot_shift=2),
    dict(op="pps", patterns=8, nnz=4, in_c=64, in_h=56, in_w=56, out_c=64, pad=1, stride=1, slot_shift=3),
    dict(op="gap", in_c=64, in_h=8, in_w=8, share=True),
    dict(op="maxpool", kh=3, kw=3, stride=1, pad=1, in_c=24, in_h=16, in_w=16, share=True),
]
ZCU_BANDED = [
    dict(op="pps", patterns=8, nnz=4, in_c=32, in_h=72, in_w=72, out_c=32, pad=1, stride=1),
    dict(op="dense", kh=3, kw=3, in_c=32, in_h=72, in_w=72, out_c=32, pad=1, stride=2),
    dict(op="maxpool", kh=3, kw=3, stride=2, pad=1, in_c=48, in_h=64, in_w=64),
]


def _run(arena, descs, hw, rtl, rows):
    rtl.load(lf.as_program(arena, descs, hw))
    rtl.run()
    for d, layer in zip(descs, rtl.stats()["layers"]):
        rows.append({"hw": hw.name, "desc": {**dataclasses.asdict(d), "op": int(d.op)},
                     "cycles": int(layer["cycles"]), "mac": int(layer["mac_cycles"])})


def measure() -> list:
    from sps_pynq.backends.rtl import RtlBackend
    rows: list = []
    rng = np.random.default_rng(7)
    hw = get_config("small")
    rtl = RtlBackend(hw)
    for j in range(10):
        arena, descs = lf.random_program(rng, hw, n_layers=6)
        _run(arena, lf.in_bands(rng, descs) if j % 2 else descs, hw, rtl, rows)
    for _ in range(4):
        items = [lf.random_layer(rng, hw, op=k) for k in ("pps", "dense", "fc", "maxpool", "avgpool", "add", "pps",
                                                          "dense")]
        _run(*lf.side_by_side([(a, [d]) for a, d in items]), hw, rtl, rows)
    hw = get_config("zcu104")
    rtl = RtlBackend(hw)
    items = [lf.random_layer(rng, hw, **case) for case in ZCU_CASES]
    _run(*lf.side_by_side([(a, [d]) for a, d in items]), hw, rtl, rows)
    for case in ZCU_BANDED:
        arena, d = lf.random_layer(rng, hw, **case)
        _run(arena, bands.plan(d, hw), hw, rtl, rows)
    for case in ZCU_SHARED:
        case = dict(case)
        share = case.pop("share", False)
        arena, d = lf.random_layer(rng, hw, **case)
        d.share = d.share or share
        _run(arena, bands.plan(d, hw), hw, rtl, rows)
    return rows


def errors(data, core, mem) -> np.ndarray:
    return np.array([cycles.layer_cycles(d, hw, mem, core).total / r["cycles"] - 1 for d, hw, r in data])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fit", action="store_true", help="fit the constants (Nelder-Mead, needs scipy)")
    p.add_argument("--save", help="write the measurements to this JSON file")
    p.add_argument("--load", help="read measurements from this JSON file instead of simulating")
    args = p.parse_args(argv)
    rows = json.loads(Path(args.load).read_text()) if args.load else measure()
    if args.save:
        Path(args.save).write_text(json.dumps(rows))
    data = [(Descriptor(**{**r["desc"], "op": Op(r["desc"]["op"])}), get_config(r["hw"]), r) for r in rows]
    core, mem = cycles.CORE, cycles.TESTBENCH
    if args.fit:
        from scipy.optimize import minimize
        names = [f.name for f in dataclasses.fields(cycles.CoreTiming)]

        def loss(v):
            e = errors(data, cycles.CoreTiming(**dict(zip(names, v[:-1]))), cycles.Memory("fit", v[-1]))
            return float(np.sqrt(np.mean(e ** 2)) + 0.3 * np.abs(e).max())
        x0 = [getattr(core, n) for n in names] + [mem.read_latency]
        res = minimize(loss, x0, method="Nelder-Mead", options={"maxiter": 3000, "xatol": 1e-3, "fatol": 1e-6})
        core, mem = cycles.CoreTiming(**dict(zip(names, res.x[:-1]))), cycles.Memory("fit", float(res.x[-1]))
        print("fitted:", ", ".join(f"{n} {v:.2f}" for n, v in zip(names + ["read_latency"], res.x)))
    mac_exact = all(cycles.layer_cycles(d, hw).mac == r["mac"] for d, hw, r in data)
    e = errors(data, core, mem)
    measured = np.array([r["cycles"] for _, _, r in data])
    print(f"{len(data)} layers; MAC-issue cycles equal the core's MAC counter on all: {mac_exact}")
    for lo in (0, 500, 1000, 5000):
        m = measured >= lo
        print(f"layers of >= {lo:>5} cycles: {m.sum():>3}, max |error| {np.abs(e[m]).max():.2%}, "
              f"rms {np.sqrt(np.mean(e[m] ** 2)):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
