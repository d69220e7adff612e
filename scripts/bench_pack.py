"""Pack time of VGG16 (CIFAR, from the zoo) and the size of the .spsmodel against the fp32 ONNX file.

    python scripts/bench_pack.py [--model vgg16] [--pps 8x4] [--repeat 3]

Measured in one run: the zoo model is exported once to an fp32 ONNX file (TorchScript exporter, BN kept), then
packed `--repeat` times from that file with 32 calibration inputs (seeded standard normal, given explicitly, so
calibration is included in the time), and once from the zoo name (includes building and exporting the torch
model, and importing torch).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--pps", default="8x4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--num-calib", type=int, default=32)
    args = ap.parse_args(argv)

    from sps_pynq import zoo
    from sps_pynq.compiler import pack
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, f"{args.model}.onnx")
        t0 = time.perf_counter()
        zoo.export_onnx(zoo.build(args.model), onnx_path, zoo.input_shape(args.model))
        t_export = time.perf_counter() - t0
        calib = np.random.default_rng(0).standard_normal(
            (args.num_calib,) + tuple(zoo.input_shape(args.model))).astype(np.float32)
        out = os.path.join(tmp, f"{args.model}.spsmodel")
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            program = pack(onnx_path, out, pps=args.pps, calib=calib)
            times.append(time.perf_counter() - t0)
        onnx_bytes, sps_bytes = os.path.getsize(onnx_path), os.path.getsize(out)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pack(args.model, os.path.join(tmp, "zoo.spsmodel"), pps=args.pps, num_calib=args.num_calib)
        t_zoo = time.perf_counter() - t0

    sparse, dense = program.conv_macs()
    print(f"model {args.model} {zoo.input_shape(args.model)}, PPS {args.pps}, hw {program.hw.name}, "
          f"{program.num_layers} layers, {args.num_calib} calibration inputs, {os.cpu_count()} CPUs")
    print(f"pack from ONNX file: median {statistics.median(times):.2f} s over {len(times)} runs "
          f"({', '.join(f'{t:.2f}' for t in times)}); goal < 30 s: {'met' if max(times) < 30 else 'NOT met'}")
    print(f"pack from zoo name (torch build + export + pack): {t_zoo:.2f} s; ONNX export alone {t_export:.2f} s")
    print(f"fp32 ONNX {onnx_bytes / 1e6:.2f} MB, .spsmodel {sps_bytes / 1e6:.2f} MB: "
          f"{onnx_bytes / sps_bytes:.2f}x smaller (image {len(program.image) / 1e6:.2f} MB uncompressed)")
    print(f"conv MACs: {sparse / 1e6:.1f}M nonzero of {dense / 1e6:.1f}M dense ({dense / sparse:.2f}x fewer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
