"""`sps-pynq storage`: bits of weights and index of a PPS-pruned model under dense, CSR, CSC, COO, bitmap,
relative (EIE), per-kernel pattern id and PPS storage, with the ratios against PPS (docs/storage.md)."""
from __future__ import annotations

import argparse
import json

from ..errors import SpsError

NAME = "storage"
HELP = "weight storage (index and total bits) of a model pruned to PPS(P, K), under common sparse formats vs PPS"


def _pps_spec(text: str):
    from ..pps import parse_pps_spec
    try:
        return parse_pps_spec(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e     # argparse prints our message as a usage error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", nargs="?", help="an ONNX file (or use --model)")
    p.add_argument("--model", metavar="NAME", help="a zoo model instead of a file: vgg16, resnet18, resnet20, "
                                                   "mnist_cnn, vgg_small (needs torch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the zoo model's random weights (default 0)")
    p.add_argument("--pps", type=_pps_spec, default=(8, 4), metavar="PxK",
                   help="prune 3x3 convs to P patterns of K taps each (default 8x4)")
    p.add_argument("--first-layer-dense", action="store_true", help="keep the first conv layer dense")
    p.add_argument("--index-width", choices=["minimal", "fixed"], default="minimal",
                   help="minimal: ceil(log2 n)-bit indices and pointers (default); fixed: 16-bit indices, "
                        "32-bit pointers")
    p.add_argument("--layers", action="store_true", help="also print one line per layer")
    p.add_argument("--json", action="store_true", help="print the report as JSON (with every layer)")


def run(args) -> int:
    from ..analysis import storage
    if (args.onnx is None) == (args.model is None):
        raise SpsError("give exactly one of an ONNX file or --model NAME")
    if args.model is not None:
        from .. import zoo
        if args.model not in zoo.names():
            raise SpsError(f"unknown zoo model {args.model!r}; known models: {', '.join(zoo.names())}")
        layers = storage.layers_from_zoo(args.model, seed=args.seed)
        source = f"zoo model {args.model} (seed {args.seed})"
    else:
        layers = storage.layers_from_onnx(args.onnx)
        source = args.onnx
    P, K = args.pps
    reports = storage.analyze(layers, P, K, args.first_layer_dense, args.index_width)
    d = storage.report_dict(reports, source, P, K, args.index_width, args.first_layer_dense)
    if args.json:
        print(json.dumps(d, indent=1))
    else:
        print(storage.format_report(d, per_layer=args.layers))
    return 0
