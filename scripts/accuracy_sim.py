#!/usr/bin/env python3
"""The int8 program on the sim backend against onnxruntime on the PPS-projected fp32 model it approximates:
top-1 agreement and the output error in units of the output scale (int8 LSBs), on N seeded inputs.

    python scripts/accuracy_sim.py [--models vgg16 resnet18] [--n 1000] [--pps 8x4]

The zoo models are random-init (seeded), so what "correct" means is agreement with the float model. Inputs
and calibration come from the same distribution (seeded N(0, 1), different seeds), as a deployment calibrates
on its own data. Near-ties make top-1 agreement fragile, so the script also reports how many inputs have a
float top-1/top-2 margin smaller than the largest error seen (the only ones where a flip is plausible).
"""
from __future__ import annotations

import argparse

import numpy as np

from sim_models import build, ort_session

from sps_pynq.pps import parse_pps_spec


def check(name: str, pps, n: int, seed: int = 2) -> dict:
    from sps_pynq.runtime.session import Session
    program, proto, shape = build(name, pps)
    ort = ort_session(proto)
    in_name = ort.get_inputs()[0].name
    xs = np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)
    ref = np.concatenate([ort.run(None, {in_name: x[None]})[0].reshape(1, -1) for x in xs])
    with Session(program, backend="sim") as s:
        got = s.run(xs).reshape(n, -1)
    scale = program.outputs[0].scale
    err = np.abs(got - ref).max(axis=1) / scale
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = (top2[:, 1] - top2[:, 0]) / scale
    agree = np.argmax(got, axis=1) == np.argmax(ref, axis=1)
    return {"model": name, "n": n, "agree": float(agree.mean()), "disagree": int((~agree).sum()),
            "max_err": float(err.max()), "median_err": float(np.median(err)), "scale": scale,
            "logit_std_lsb": float(ref.std(axis=1).mean() / scale), "near_ties": int((margin < err.max()).sum())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["vgg16", "resnet18"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--pps", default="8x4")
    args = p.parse_args()
    pps = parse_pps_spec(args.pps)
    print(f"sim (int8, PPS{pps}) vs onnxruntime (PPS-projected fp32), {args.n} seeded N(0,1) inputs; errors in "
          f"output LSBs (units of the output scale)")
    print(f"{'model':10s} {'top-1 agree':>11s} {'max err':>8s} {'median':>7s} {'logit std':>9s} "
          f"{'margin<max err':>14s}")
    for name in args.models:
        r = check(name, pps, args.n)
        print(f"{r['model']:10s} {r['agree'] * 100:10.1f}% {r['max_err']:8.2f} {r['median_err']:7.2f} "
              f"{r['logit_std_lsb']:9.1f} {r['near_ties']:14d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
