"""`sps-pynq prune`: one-shot PPS projection of an ONNX model, for users without a training loop. torch-free.

Every eligible 3x3 conv is projected onto PPS(P, K) with the table of most L2 energy, chosen on the weights as the
compiler sees them (BatchNorm folded in), and the pattern masks are written back onto the original Conv weights
(BN stays; folding later scales whole output channels, which keeps zeros zero). `sps-pynq pack` then detects and
keeps these tables. Layers that are already PPS are left as they are ("detected"). Accuracy after projection only
is usually lower than after fine-tuning; see docs/pruning.md for fine-tuning with `sps_pynq.prune`.
"""
from __future__ import annotations

import argparse
import os

NAME = "prune"
HELP = "project the 3x3 convs of an ONNX model onto PPS(P, K) (one shot, no training) and report the energy kept"


def _pps_spec(text: str):
    from ..pps import parse_pps_spec
    return parse_pps_spec(text)   # a ValueError subclass: argparse prints a usage error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the ONNX file to prune")
    p.add_argument("-o", "--output", required=True, help="the pruned ONNX file to write")
    p.add_argument("--pps", type=_pps_spec, default=(8, 4), metavar="PxK",
                   help="P patterns of K taps each (default 8x4)")
    p.add_argument("--first-layer-dense", action="store_true", help="keep the first conv layer dense")


def prune_onnx(model_path: str, out_path: str, pps=(8, 4), first_layer_dense: bool = False):
    """Project `model_path` and save it to `out_path`; returns the compiler's conv layers (with masks, how the
    table was obtained and the energy kept) for a report."""
    import onnx
    from ..compiler import CompileOptions, import_and_lower, project_onnx
    from ..hw.descriptor import Op
    # fill_rows off: the report and the masks are the pruned tables, not an encoding of them
    options = CompileOptions(pps=pps, first_layer_dense=first_layer_dense, fill_rows=False)
    _, layers, _ = import_and_lower(model_path, options)
    pruned = project_onnx(model_path, options)
    d = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(d, exist_ok=True)
    tmp = out_path + ".tmp"
    onnx.save(pruned, tmp)
    os.replace(tmp, out_path)          # never leave a half-written model under the final name
    return [layer for layer in layers if layer.op == Op.CONV]


def format_report(layers, first_layer_dense: bool = False) -> str:
    """One line per conv: name, weight shape, structure, L2 energy kept, pattern table; then the totals."""
    from ..pps import taps_of
    rows = [f"{'layer':<28} {'weight shape':<18} {'structure':<22} {'energy kept':>11}  table (taps per pattern)"]
    kept = total = 0
    for idx, layer in enumerate(layers):
        shape = list(layer.weights.shape)
        n = layer.weights.size
        total += n
        if layer.masks:
            structure = f"PPS({layer.P},{layer.K}) {layer.pps_how}"
            energy = f"{100 * layer.energy_kept:.2f}%"
            table = " ".join("".join(str(t) for t in taps_of(m)) for m in layer.masks)
            kept += n * layer.K // 9
        else:
            if layer.fc:
                what = "fc"
            elif layer.weights.shape[2:] != (3, 3):
                what = "dense (not 3x3)"
            else:
                what = "dense (first layer)" if first_layer_dense and idx == 0 else "dense"
            structure, energy, table = what, "", ""
            kept += n
        rows.append(f"{layer.name:<28} {str(shape):<18} {structure:<22} {energy:>11}  {table}")
    rows.append(f"weights kept: {kept} of {total} ({100 * kept / max(total, 1):.1f}%); energy is measured on the "
                f"BN-folded weights the compiler sees")
    return "\n".join(rows)


def run(args) -> int:
    layers = prune_onnx(args.model, args.output, args.pps, args.first_layer_dense)
    print(format_report(layers, args.first_layer_dense))
    P, K = args.pps
    print(f"{args.output}: written with PPS({P},{K}); fine-tune it for best accuracy (docs/pruning.md)")
    return 0
