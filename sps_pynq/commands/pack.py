"""`sps-pynq pack`: compile an ONNX file or a zoo model into a .spsmodel for the SPS core."""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

NAME = "pack"
HELP = "compile an ONNX file (or a zoo model) into a packed .spsmodel"


def _pps_spec(text: str):
    from ..pps import parse_pps_spec
    return parse_pps_spec(text)   # raises a ValueError subclass: argparse prints a usage error


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..hw.config import CONFIGS, DEFAULT_CONFIG
    p.add_argument("model", nargs="?", help="an ONNX file (any opset the installed onnx knows)")
    p.add_argument("--model", dest="zoo", metavar="NAME", help="a model of the zoo instead of a file (e.g. vgg16)")
    p.add_argument("-o", "--output", help="the .spsmodel to write")
    p.add_argument("--explain", action="store_true",
                   help="write nothing; list every node that keeps the model from packing (op, attributes, shapes, "
                        "why, and what would fix it), or the layers it packs into (exit 2 if it does not pack)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--pps", type=_pps_spec, default=(8, 4), metavar="PxK",
                      help="project (or check) every 3x3 conv to P patterns of K taps (default 8x4)")
    mode.add_argument("--dense", action="store_true", help="no PPS: every layer dense")
    p.add_argument("--first-layer-dense", action="store_true", help="keep the first conv layer dense")
    p.add_argument("--fill-rows", action=argparse.BooleanOptionalAction, default=True,
                   help="merge small PPS residue classes, or let them share row groups, so that the array's rows "
                        "are full, where the cycle model says that is faster (same outputs; merged: K' >= K "
                        "weights a kernel stored; docs/compiler.md). On by default; --no-fill-rows packs the "
                        "encoding exactly as pruned (e.g. to compare)")
    p.add_argument("--keep-outputs", action=argparse.BooleanOptionalAction, default=True,
                   help="keep a layer's output in the activation buffer when the next layer reads just that map, "
                        "which then skips its input load (same outputs; docs/compiler.md). On by default")
    p.add_argument("--calib", metavar="DATA.npy",
                   help="calibration inputs, float32 [N, C, H, W]; default: seeded synthetic inputs (a warning)")
    p.add_argument("--num-calib", type=int, default=32, help="synthetic calibration inputs (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic calibration data and zoo weights")
    p.add_argument("--hw", choices=sorted(CONFIGS), default=DEFAULT_CONFIG, help="target hardware configuration")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (what was written, or with --explain the explanation) instead of "
                        "the text; warnings go into it too")


def run(args) -> int:
    from ..errors import CompileError
    if (args.model is None) == (args.zoo is None):
        raise CompileError("give exactly one model: an ONNX file or --model NAME")
    if args.zoo is not None:
        from ..compiler.frontend import zoo_names
        try:
            from .. import zoo  # noqa: F401  (needs torch)
        except ImportError as e:
            raise CompileError(f"--model {args.zoo}: the model zoo needs torch ({e}); install the workstation "
                               f"extra (pip install 'sps-pynq[workstation]') or pack an ONNX file") from e
        if args.zoo not in zoo_names():
            raise CompileError(f"unknown zoo model {args.zoo!r}; known: {', '.join(zoo_names()) or 'none'}")
    from ..compiler import CompileOptions, pack
    from ..model_file import check_writable
    model = args.zoo if args.zoo is not None else args.model
    options = CompileOptions(hw=args.hw, pps=None if args.dense else args.pps,
                             first_layer_dense=args.first_layer_dense, fill_rows=args.fill_rows,
                             keep_outputs=args.keep_outputs, calib=args.calib,
                             num_calib=args.num_calib, seed=args.seed)
    if args.explain:
        from ..compiler.explain import explain
        result = explain(model, options)
        if args.json:
            import dataclasses
            print(json.dumps({**dataclasses.asdict(result), "packs": result.packs}, indent=1))
        else:
            print(result.text())
        return 0 if result.packs else 2
    if args.output is None:
        raise CompileError("give the .spsmodel to write with -o/--output (or --explain to only check the model)")
    check_writable(args.output)                     # before the compile, not after it
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program = pack(model, args.output, options)
    sparse, dense = program.conv_macs()
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"output": args.output, "source": program.metadata.get("source"), "hw": program.hw.name,
                          "pps": program.metadata.get("pps"), "layers": program.num_layers,
                          "image_bytes": len(program.image), "arena_bytes": program.arena_size,
                          "macs": sparse, "dense_macs": dense, "seconds": round(seconds, 3),
                          "calibration": program.metadata.get("calibration"),
                          "warnings": [str(w.message) for w in caught]}, indent=1))
        return 0
    for w in caught:
        print(f"sps-pynq pack: warning: {w.message}", file=sys.stderr)
    print(f"{args.output}: {program.num_layers} layers, {program.metadata.get('pps')} for {program.hw.name}, "
          f"image {len(program.image)} bytes, arena {program.arena_size} bytes, "
          f"{sparse / 1e6:.1f}M of {dense / 1e6:.1f}M MACs ({dense / max(sparse, 1):.2f}x fewer), {seconds:.1f} s")
    return 0
