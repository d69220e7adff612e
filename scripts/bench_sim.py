#!/usr/bin/env python3
"""Batch-1 latency of the `sim` backend (C golden model, int8, PPS) against onnxruntime running the same
PPS-projected fp32 ONNX model, in one run on this machine. Prints the medians and the ratio sim / onnxruntime
(goal: <= 1.0).

    python scripts/bench_sim.py [--models vgg16 resnet18] [--repeats 50] [--pps 8x4]

Both get the same threads (default: every CPU; onnxruntime's default intra-op pool, the sim's work sharing).
Runs alternate in blocks (5 ORT, pause, 5 sim, pause, ...) so that load from other processes hits both alike,
and the pause lets onnxruntime's spinning pool threads park before the sim runs (and the other way round).
The sim's time is Session.run (quantize, the whole layer program, dequantize), onnxruntime's
InferenceSession.run.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from sim_models import build, ort_session

from sps_pynq.pps import parse_pps_spec

BLOCK = 5          # runs of one engine in a row
PAUSE_S = 0.05     # between blocks


def bench(name: str, pps, repeats: int, threads: int) -> dict:
    from sps_pynq.runtime.session import Session
    program, proto, shape = build(name, pps)
    ort = ort_session(proto, threads)
    in_name = ort.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32)
    with Session(program, backend="sim", threads=threads) as s:
        for _ in range(5):                                      # warm-up: caches, thread pools, first-run work
            ort.run(None, {in_name: x})
            s.run(x)
        t_ort, t_sim, c_ort, c_sim = [], [], [], []
        runners = ((lambda: ort.run(None, {in_name: x}), t_ort, c_ort), (lambda: s.run(x), t_sim, c_sim))
        while len(t_sim) < repeats:
            for fn, wall, cpu in runners:
                time.sleep(PAUSE_S)
                for _ in range(min(BLOCK, repeats - len(wall))):
                    c, t = time.process_time(), time.perf_counter()
                    fn()
                    wall.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
        macs, dense = program.conv_macs()
    med = lambda v: float(np.median(v)) * 1e3
    return {"model": name, "ort_ms": med(t_ort), "sim_ms": med(t_sim), "ratio": med(t_sim) / med(t_ort),
            "ort_cpu_ms": med(c_ort), "sim_cpu_ms": med(c_sim), "macs": macs, "dense_macs": dense}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["vgg16", "resnet18"])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--pps", default="8x4")
    p.add_argument("--threads", type=int, default=0, help="threads for both (default: all CPUs)")
    args = p.parse_args()
    pps = parse_pps_spec(args.pps)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; batch 1, PPS{pps}, "
          f"median of {args.repeats} alternating runs")
    print(f"{'model':10s} {'onnxruntime fp32':>17s} {'sim int8':>10s} {'ratio':>7s}   "
          f"{'ORT CPU':>8s} {'sim CPU':>8s}   MACs nonzero/dense")
    for name in args.models:
        r = bench(name, pps, args.repeats, args.threads)
        print(f"{r['model']:10s} {r['ort_ms']:14.2f} ms {r['sim_ms']:7.2f} ms {r['ratio']:7.2f}   "
              f"{r['ort_cpu_ms']:5.1f} ms {r['sim_cpu_ms']:5.1f} ms   {r['macs'] / 1e6:.0f}M/{r['dense_macs'] / 1e6:.0f}M")
    print("ratio = sim / onnxruntime wall-clock median (goal <= 1.0); CPU = process CPU time, all threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
