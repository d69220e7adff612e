"""Weight storage of a PPS-pruned model under common sparse formats: how many bits of weights and of index.

The formulas and assumptions are in docs/storage.md; in short:
- each layer is the matrix W of O rows (filters) and C = I*kh*kw columns (flattened kernels, (i, ky, kx) order);
- weights are int8, quantized symmetric per output channel (as the compiler does, docs/arithmetic.md); a weight is
  "nonzero" when its int8 value is, so the sparse formats profit from weights that round to zero;
- eligible 3x3 convs are projected onto PPS(P, K) (`pps.project`); every other layer (1x1, FC, grouped, and the
  first conv with `first_layer_dense`) is stored dense, with no index, in every format;
- index widths: "minimal" = ceil(log2(n)) bits for an index over n positions and ceil(log2(entries + 1)) for a
  pointer (the most favourable case for the other formats), or "fixed" = 16-bit indices and 32-bit pointers.

numpy only; `layers_from_onnx` needs onnx, `layers_from_zoo` torch (both imported only when called).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import pps
from ..compiler.quantize import quantize_weights
from ..errors import OnnxImportError, SpsError

WEIGHT_BITS = 8
REL_INDEX_BITS = 4                    # EIE: 4-bit relative index = zeros skipped since the previous entry
REL_MAX_GAP = (1 << REL_INDEX_BITS) - 1
SPARSE_FORMATS = ["csr", "csc", "coo", "bitmap", "relative", "pattern_id"]     # the "other sparse formats"
FORMATS = ["dense"] + SPARSE_FORMATS + ["pps"]
FORMAT_TITLES = {
    "dense": "dense (no index)",
    "csr": "CSR",
    "csc": "CSC",
    "coo": "COO",
    "bitmap": "bitmap",
    "relative": "relative 4-bit (EIE)",
    "pattern_id": "pattern id per kernel",
    "pps": "PPS (table only)",
}
INDEX_WIDTHS = ("minimal", "fixed")
PAPER_INDEX_RATIO = 22044.0           # the paper: indexing memory, other sparse formats vs PPS
PAPER_TOTAL_RATIO = 3.67              # the paper: total weight storage, other sparse formats vs PPS


# ---------------------------------------------------------------------------------------------------- the layers
@dataclass
class LayerWeights:
    name: str                 # module or ONNX initializer name
    weights: np.ndarray       # float weights, (O, I, kh, kw) for a conv, (O, I) for a fully connected layer
    groups: int = 1           # conv groups (ONNX `group` attribute)


@dataclass
class Bits:
    weight: int               # bits of stored weights (nonzeros, plus filler or in-pattern zeros where stored)
    index: int                # bits of everything that says where the weights are

    @property
    def total(self) -> int:
        return self.weight + self.index

    def __add__(self, other: "Bits") -> "Bits":
        return Bits(self.weight + other.weight, self.index + other.index)


@dataclass
class LayerReport:
    name: str
    shape: List[int]
    structure: str            # "PPS(8,4)", "dense (fc)", "dense (1x1)", "dense (first layer)", ...
    weights: int              # positions O*I*kh*kw
    nonzeros: int             # int8 nonzeros after pruning and quantization
    bits: Dict[str, Bits] = field(default_factory=dict)
    masks: Optional[List[int]] = None


# ------------------------------------------------------------------------------------------------- index widths
def index_bits(n: int) -> int:
    """Bits of an index over n positions: ceil(log2 n), at least 1."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def pointer_bits(entries: int) -> int:
    """Bits of a pointer into an array of `entries` (values 0..entries): ceil(log2(entries + 1)), at least 1."""
    return index_bits(entries + 1)


def _widths(index_width: str, rows: int, cols: int, entries: int):
    """(row index, column index, pointer) widths."""
    if index_width == "fixed":
        return 16, 16, 32
    if index_width != "minimal":
        raise SpsError(f"unknown index width convention {index_width!r}; use one of {', '.join(INDEX_WIDTHS)}")
    return index_bits(rows), index_bits(cols), pointer_bits(entries)


# ----------------------------------------------------------------------------------------------------- formats
def relative_fillers(nz: np.ndarray) -> int:
    """Filler zeros EIE's relative format inserts in a (rows, cols) bool matrix, each row coded on its own.

    An entry stores the number of zeros skipped since the previous entry of its row in 4 bits; a run of g > 15
    zeros therefore needs floor(g / 16) filler entries (each skips 15 zeros and stores one zero). Trailing zeros
    of a row need none (the row pointer ends the row).
    """
    rows, cols = np.nonzero(nz)                                        # row-major: sorted by row, then column
    if rows.size == 0:
        return 0
    prev = np.empty_like(cols)
    prev[0] = -1
    prev[1:] = cols[:-1]
    prev[np.r_[True, rows[1:] != rows[:-1]]] = -1                      # the first entry of a row: gap from col 0
    gaps = cols - prev - 1
    return int((gaps // (REL_MAX_GAP + 1)).sum())


def sparse_bits(q: np.ndarray, index_width: str = "minimal") -> Dict[str, Bits]:
    """Bits of one layer's int8 weights under dense, CSR, CSC, COO, bitmap and relative (EIE) formats.

    `q` is the layer as a (rows = O, cols = I*kh*kw) matrix; only its zero pattern matters.
    """
    nz = np.asarray(q).reshape(q.shape[0], -1) != 0
    rows, cols = nz.shape
    nnz = int(nz.sum())
    w_row, w_col, w_ptr = _widths(index_width, rows, cols, nnz)
    fillers = relative_fillers(nz)
    entries = nnz + fillers
    w_rel_ptr = _widths(index_width, rows, cols, entries)[2]
    values = nnz * WEIGHT_BITS
    return {
        "dense": Bits(rows * cols * WEIGHT_BITS, 0),
        "csr": Bits(values, nnz * w_col + (rows + 1) * w_ptr),
        "csc": Bits(values, nnz * w_row + (cols + 1) * w_ptr),
        "coo": Bits(values, nnz * (w_row + w_col)),
        "bitmap": Bits(values, rows * cols),
        "relative": Bits(entries * WEIGHT_BITS, entries * REL_INDEX_BITS + (rows + 1) * w_rel_ptr),
    }


def pattern_bits(O: int, I: int, P: int, K: int) -> Dict[str, Bits]:
    """Bits of a PPS(P, K) 3x3 layer stored by pattern: per-kernel pattern id (PatDNN/PCONV) and PPS.

    Both store the K weights of every kernel's pattern (a weight that happens to be zero inside it included) and
    the P x 9-bit pattern table. The pattern-id format adds ceil(log2 P) bits per kernel (0 for P = 1); no
    kernel-level index is needed because PPS leaves no kernel empty. PPS needs nothing else: the pattern of kernel
    (o, i) is table[(o + i) mod P].
    """
    values = O * I * K * WEIGHT_BITS
    table = P * pps.TAPS
    id_bits = math.ceil(math.log2(P)) if P > 1 else 0
    return {"pattern_id": Bits(values, O * I * id_bits + table), "pps": Bits(values, table)}


def quantize_int8(w: np.ndarray) -> np.ndarray:
    """Symmetric per-output-channel int8 (-127..127), scale max|w| / 127, round half to even: the compiler's
    weight quantizer (`compiler.quantize.quantize_weights`; a layer without bias)."""
    return quantize_weights(w)[0]


# ------------------------------------------------------------------------------------------------------ report
def _dense_reason(layer: LayerWeights, index: int, first_layer_dense: bool) -> Optional[str]:
    """Why a layer stays dense, or None if it gets pruned to PPS."""
    w = layer.weights
    if w.ndim == 2:
        return "dense (fc)"
    if w.ndim != 4:
        return f"dense ({w.ndim}-D)"
    if w.shape[2:] != (3, 3):
        return f"dense ({w.shape[2]}x{w.shape[3]})"
    if layer.groups != 1:
        return f"dense (groups={layer.groups})"
    if first_layer_dense and index == 0:
        return "dense (first layer)"
    return None


def analyze(layers: Sequence[LayerWeights], P: int = 8, K: int = 4, first_layer_dense: bool = False,
            index_width: str = "minimal") -> List[LayerReport]:
    """Prune every eligible 3x3 conv to PPS(P, K), quantize to int8 and count each format's bits per layer."""
    if not layers:
        raise SpsError("no conv or fully connected weights to report on")
    _widths(index_width, 1, 1, 0)                                      # reject a bad convention early
    reports = []
    convs_seen = 0
    for layer in layers:
        w = np.asarray(layer.weights)
        is_conv = w.ndim == 4
        reason = _dense_reason(layer, convs_seen if is_conv else -1, first_layer_dense)
        convs_seen += is_conv
        if reason is None:
            proj = pps.project(w, P, K, name=layer.name)
            q = quantize_int8(proj.weights)
            bits = sparse_bits(q, index_width)
            bits.update(pattern_bits(w.shape[0], w.shape[1], P, K))
            structure, masks = f"PPS({P},{K})", proj.masks
        else:
            q = quantize_int8(w)
            dense = Bits(w.size * WEIGHT_BITS, 0)
            bits = {f: dense for f in FORMATS}                          # stored dense in every format
            structure, masks = reason, None
        reports.append(LayerReport(layer.name, list(w.shape), structure, int(w.size), int(np.count_nonzero(q)),
                                   bits, masks))
    return reports


def totals(reports: Sequence[LayerReport], pps_only: bool = False) -> Dict[str, Bits]:
    out = {f: Bits(0, 0) for f in FORMATS}
    for r in reports:
        if pps_only and r.masks is None:
            continue
        for f in FORMATS:
            out[f] = out[f] + r.bits[f]
    return out


def _geomean(xs: Sequence[float]) -> float:
    return float(math.exp(sum(math.log(x) for x in xs) / len(xs)))


def comparison(tot: Dict[str, Bits]) -> Dict[str, float]:
    """Ratios of the other sparse formats against PPS: index (vs the best other format, and geometric mean) and
    total storage (vs the best other format, and geometric mean)."""
    p = tot["pps"]
    idx = [tot[f].index / p.index for f in SPARSE_FORMATS] if p.index else []
    total = [tot[f].total / p.total for f in SPARSE_FORMATS] if p.total else []
    return {
        "index_ratio_vs_best_other": min(idx) if idx else float("nan"),
        "index_ratio_geomean": _geomean(idx) if idx else float("nan"),
        "total_ratio_vs_best_other": min(total) if total else float("nan"),
        "total_ratio_geomean": _geomean(total) if total else float("nan"),
        "best_other_index_format": SPARSE_FORMATS[int(np.argmin(idx))] if idx else None,
        "best_other_total_format": SPARSE_FORMATS[int(np.argmin(total))] if total else None,
    }


# ------------------------------------------------------------------------------------------------------- sources
def layers_from_zoo(name: str, seed: int = 0) -> List[LayerWeights]:
    """The Conv2d and Linear weights of a zoo model, in module order."""
    try:
        from torch import nn
        from .. import zoo
    except ImportError as e:
        raise SpsError(f"--model {name} needs torch (the workstation extra); give an ONNX file instead") from e
    model = zoo.build(name, seed=seed)
    out = []
    for mod_name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            groups = m.groups if isinstance(m, nn.Conv2d) else 1
            out.append(LayerWeights(mod_name, m.weight.detach().numpy().copy(), groups))
    return out


def layers_from_onnx(path: str) -> List[LayerWeights]:
    """The weights of every Conv, Gemm and MatMul whose weight is a constant, in graph order. No compiler needed.

    Gemm weights are turned into (O, I) whatever `transB` says; MatMul weights (I, O) likewise.
    """
    if not os.path.isfile(path):
        raise OnnxImportError(f"{path}: no such ONNX file; give a path to a .onnx model or --model NAME")
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise SpsError("reading ONNX files needs the onnx package (the workstation extra)") from e
    from ..compiler.ir import load_onnx, onnx_constants             # the compiler's reader: same errors, constants
    model = load_onnx(path)
    consts = onnx_constants(model.graph)                             # initializers and Constant nodes
    for node in model.graph.node:                                    # and Identity-of-constant tensors
        if node.op_type == "Identity" and node.input and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]

    def const(node, k):
        if len(node.input) > k and node.input[k] in consts:
            return numpy_helper.to_array(consts[node.input[k]]).astype(np.float32)
        return None

    layers = []
    for n, node in enumerate(model.graph.node):
        label = node.name or f"{node.op_type}#{n}"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w = const(node, 1)
            if w is None:
                continue                                             # weights computed at run time: not ours
            if w.ndim != 4:
                raise OnnxImportError(f"{path}: Conv node {label} has a {w.ndim}-D weight {list(w.shape)}; only "
                                      "2-D convolutions (4-D weights) are supported")
            layers.append(LayerWeights(label, w, int(attrs.get("group", 1))))
        elif node.op_type in ("Gemm", "MatMul"):
            w = const(node, 1)
            if w is None or w.ndim != 2:
                continue
            trans = node.op_type == "Gemm" and attrs.get("transB", 0)
            layers.append(LayerWeights(label, w if trans else w.T))
    if not layers:
        raise OnnxImportError(f"{path}: no Conv, Gemm or MatMul node with constant weights found")
    return layers


# ------------------------------------------------------------------------------------------------------- output
def _kib(bits: int) -> float:
    return bits / 8 / 1024


def report_dict(reports: Sequence[LayerReport], source: str, P: int, K: int, index_width: str,
                first_layer_dense: bool) -> dict:
    tot = totals(reports)
    tot_pps = totals(reports, pps_only=True)
    p = tot["pps"]

    def fmt_rows(t):
        return [{"format": f, "title": FORMAT_TITLES[f], "weight_bits": t[f].weight, "index_bits": t[f].index,
                 "total_bits": t[f].total, "total_kib": _kib(t[f].total),
                 "index_ratio_vs_pps": t[f].index / t["pps"].index if t["pps"].index else None,
                 "total_ratio_vs_pps": t[f].total / t["pps"].total if t["pps"].total else None} for f in FORMATS]

    return {
        "source": source, "pps": {"P": P, "K": K}, "weight_bits": WEIGHT_BITS, "index_width": index_width,
        "first_layer_dense": first_layer_dense,
        "formats": fmt_rows(tot),
        "pps_layers_only": fmt_rows(tot_pps),
        "comparison": {"whole_model": comparison(tot), "pps_layers_only": comparison(tot_pps),
                       "paper": {"index_ratio": PAPER_INDEX_RATIO, "total_ratio": PAPER_TOTAL_RATIO}},
        "layers": [{"name": r.name, "shape": r.shape, "structure": r.structure, "weights": r.weights,
                    "nonzeros": r.nonzeros, "masks": r.masks,
                    "bits": {f: {"weight": b.weight, "index": b.index} for f, b in r.bits.items()}}
                   for r in reports],
        "pps_index_bits": p.index,
    }


def _ratio(x) -> str:
    return "-" if x is None else f"{x:,.2f}x" if x < 100 else f"{x:,.0f}x"


def format_report(d: dict, per_layer: bool = False) -> str:
    n_pps = sum(1 for l in d["layers"] if l["masks"] is not None)
    dense = [f"{l['name']}: {l['structure']}" for l in d["layers"] if l["masks"] is None]
    lines = [f"{d['source']}: {len(d['layers'])} weight layers, {n_pps} pruned to "
             f"PPS({d['pps']['P']},{d['pps']['K']}), dense in every format: {', '.join(dense) or 'none'}",
             f"int{d['weight_bits']} weights (per-channel symmetric), {d['index_width']} index widths "
             f"(see docs/storage.md)", ""]
    head = f"{'format':<24} {'index bits':>13} {'weight bits':>13} {'total KiB':>11} {'index/PPS':>11} {'total/PPS':>10}"
    lines.append(head)
    lines.append("-" * len(head))
    for row in d["formats"]:
        lines.append(f"{row['title']:<24} {row['index_bits']:>13,} {row['weight_bits']:>13,} "
                     f"{row['total_kib']:>11,.1f} {_ratio(row['index_ratio_vs_pps']):>11} "
                     f"{_ratio(row['total_ratio_vs_pps']):>10}")
    cw, cp = d["comparison"]["whole_model"], d["comparison"]["pps_layers_only"]
    paper = d["comparison"]["paper"]
    if n_pps == 0:
        lines += ["", "no layer was pruned to PPS, so there is nothing to compare against PPS"]
    else:
        lines += ["",
                  "other sparse formats (CSR, CSC, COO, bitmap, relative, pattern id) vs PPS, measured here | paper:",
                  f"  indexing memory vs the best other format ({cw['best_other_index_format']}): "
                  f"{cw['index_ratio_vs_best_other']:,.0f}x (geometric mean {cw['index_ratio_geomean']:,.0f}x)"
                  f" | paper {paper['index_ratio']:,.0f}x",
                  f"  total storage, whole model: min {cw['total_ratio_vs_best_other']:.2f}x "
                  f"({cw['best_other_total_format']}), geometric mean {cw['total_ratio_geomean']:.2f}x"
                  f" | paper {paper['total_ratio']:.2f}x",
                  f"  total storage, PPS layers only: min {cp['total_ratio_vs_best_other']:.2f}x "
                  f"({cp['best_other_total_format']}), geometric mean {cp['total_ratio_geomean']:.2f}x"]
    if per_layer:
        wn = max(len("layer"), *(len(l["name"]) for l in d["layers"]))
        lines += ["", f"{'layer':<{wn}} {'shape':<20} {'structure':<20} {'nonzeros':>10} {'CSR index':>11} "
                      f"{'PPS index':>9}"]
        for l in d["layers"]:
            lines.append(f"{l['name']:<{wn}} {str(l['shape']):<20} {l['structure']:<20} {l['nonzeros']:>10,} "
                         f"{l['bits']['csr']['index']:>11,} {l['bits']['pps']['index']:>9,}")
    return "\n".join(lines)
