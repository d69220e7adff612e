"""The ImageNet-size networks of the zoo (3x224x224, PPS(8,4), first conv dense) packed and run on `sim`:
pack time, descriptors and bands, DDR bytes per inference against the minimum, sim == numpy reference on one
input, and top-1 agreement of `sim` with onnxruntime on the PPS-projected fp32 model over seeded inputs.

    python scripts/imagenet_nets.py                        # all three, 200 inputs for ResNet-18's agreement
    python scripts/imagenet_nets.py --nets resnet18_imagenet --agreement 200 --calib 32

It also prints, for the layers cut into bands, the DDR bytes of the core's loop order (bands outer, row groups
inner: each band re-reads the layer's weights) against the other order (row groups outer: each group re-reads
every band of the input).

Inputs and calibration data are seeded standard-normal images (no ImageNet here) and the weights are the zoo's
seeded ones, so agreement measures the int8 arithmetic against fp32, not accuracy.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sps_pynq.analysis.traffic import network_traffic, totals  # noqa: E402
from sps_pynq.compiler import compile_model, project_onnx  # noqa: E402
from sps_pynq.compiler.testing import ort_run  # noqa: E402
from sps_pynq.runtime.session import Session  # noqa: E402

NETS = ("resnet18_imagenet", "resnet50_imagenet", "vgg16_imagenet")
SHAPE = (3, 224, 224)


def agreement(program, name: str, n: int) -> float:
    """Share of `n` seeded inputs whose top-1 class on `sim` is onnxruntime's on the PPS-projected fp32 model."""
    xs = np.random.default_rng(1).standard_normal((n,) + SHAPE).astype(np.float32)
    floats = project_onnx(name, pps="8x4", first_layer_dense=True)
    with Session(program, backend="sim") as s:
        got = np.concatenate([s.run(xs[i:i + 20]) for i in range(0, n, 20)]).reshape(n, -1)
    want = np.concatenate([ort_run(floats, xs[i:i + 1])[0] for i in range(n)]).reshape(n, -1)
    return float((got.argmax(1) == want.argmax(1)).mean())


def loop_orders(program):
    """(bands-outer bytes, groups-outer bytes) summed over the banded CONV layers, and the largest per-layer ratio."""
    from sps_pynq.hw import layout
    from sps_pynq.hw.descriptor import Op
    from sps_pynq.hw.traffic import layer_traffic
    layers = {}
    for info, d in zip(program.layers, program.descriptors()):
        if d.op == Op.CONV and "[band" in info.name:
            layers.setdefault(info.name.split("[band")[0], []).append(d)
    ours = other = 0
    worst = 0.0
    for descs in layers.values():
        t = [layer_traffic(d, program.hw) for d in descs]
        act = sum(x["act_read"] for x in t)
        params = t[0]["weights"] + t[0]["params"]
        groups = len(layout.row_groups(descs[0].out_c, descs[0].patterns if descs[0].pps else 1, program.hw.rows,
                                       layout.desc_slot_shift(descs[0])))
        a, b = act + len(descs) * params, params + groups * act
        ours, other, worst = ours + a, other + b, max(worst, a / b)
    return len(layers), ours, other, worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    p.add_argument("--calib", type=int, default=32, help="seeded calibration inputs (default 32)")
    p.add_argument("--agreement", type=int, default=200, help="inputs for ResNet-18's top-1 agreement (0: skip)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    calib = np.random.default_rng(0).standard_normal((args.calib,) + SHAPE).astype(np.float32)
    for name in args.nets:
        t0 = time.perf_counter()
        program = compile_model(name, pps="8x4", first_layer_dense=True, calib=calib)
        pack_s = time.perf_counter() - t0
        rows = network_traffic(program)
        tot = totals(rows)
        x = np.random.default_rng(2).standard_normal((1,) + SHAPE).astype(np.float32)
        with Session(program, backend="sim") as s, Session(program, backend="ref") as r:
            y_sim = s.run(x)
            same = bool(np.array_equal(y_sim, r.run(x)))
            t0 = time.perf_counter()
            s.run(x)
            sim_s = time.perf_counter() - t0
        banded = [r for r in rows if r.bands > 1]
        print(f"{name}: packed in {pack_s:.1f} s with {args.calib} calibration inputs; {tot['layers']} layers -> "
              f"{tot['bands']} descriptors ({len(banded)} layers in bands, up to {max((r.bands for r in rows))})")
        print(f"  DDR per inference: {tot['moved'] / 1e6:.2f} MB moved, minimum {tot['minimum'] / 1e6:.2f} MB "
              f"-> {tot['ratio']:.3f}x")
        print(f"  sim == numpy reference on one input: {same}; sim wall time {sim_s * 1e3:.0f} ms on this host")
        n, ours, other, worst = loop_orders(program)
        if n:
            print(f"  loop order of the {n} banded convs: bands outer {ours / 1e6:.2f} MB, row groups outer "
                  f"{other / 1e6:.2f} MB ({other / ours:.1f}x more); per layer at most {worst:.3f} of the other order")
        if name == "resnet18_imagenet" and args.agreement:
            print(f"  top-1 agreement sim vs onnxruntime (PPS fp32), {args.agreement} seeded inputs: "
                  f"{agreement(program, name, args.agreement) * 100:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
