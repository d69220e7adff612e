"""Graph (after the passes) -> a list of hardware layers in float, and the PPS decision per conv layer.

A `Layer` is one descriptor-to-be: its op, geometry, the float weights and bias (after BN folding and PPS
projection) and the tensors it reads and writes. Quantization (quantize.py) turns the floats into integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .. import pps as pps_mod
from ..errors import PpsShapeError, UnsupportedOpError
from ..hw.config import HwConfig
from ..hw.descriptor import Op
from .ir import Graph, Node, avgpool_divisors, conv_pads, pool_pads, uniform_divisor

OP_OF = {"Conv": Op.CONV, "MaxPool": Op.MAXPOOL, "AveragePool": Op.AVGPOOL, "GlobalAveragePool": Op.AVGPOOL,
         "Add": Op.ADD}


@dataclass
class Layer:
    name: str
    op: Op
    inputs: List[str]                     # 1 tensor (2 for ADD)
    output: str
    in_shape: Tuple[int, int, int]        # (C, H, W)
    out_shape: Tuple[int, int, int]
    sources: List[str]
    kernel: Tuple[int, int] = (1, 1)
    strides: Tuple[int, int] = (1, 1)
    pads: Tuple[int, int, int, int] = (0, 0, 0, 0)      # top, left, bottom, right
    relu: bool = False
    weights: Optional[np.ndarray] = None  # float64 [O, I, kh, kw] (CONV), PPS-projected when pps
    bias: Optional[np.ndarray] = None     # float64 [O]
    masks: List[int] = field(default_factory=list)      # PPS pattern table; empty = dense
    pruned_masks: List[int] = field(default_factory=list)   # the model's own table when fill_rows merged its
                                                            # classes into `masks` (empty: masks is it)
    slot_shift: Optional[int] = None      # fill_rows: the classes of `masks` share row groups in slots of
                                          # 2^slot_shift rows (descriptor share, hw/layout.py); None: they do not;
                                          # pools: 0 when their channels share row groups
    pps_how: str = "dense"                # "dense", "projected", "detected" (already PPS, kept)
    energy_kept: float = 1.0
    fc: bool = False                      # a fully connected layer (Gemm/MatMul): always dense
    weight_source: str = ""               # the ONNX weight tensor of a Conv (project_onnx masks it)
    in_byte_offset: int = 0               # where the layer's input starts in inputs[0] (a channel slice)
    input_shift: Optional[np.ndarray] = None   # per input channel s: the layer computes Conv(x + s) until
                                                # fold_input_shifts puts sum W * s into the bias
    helper: bool = False                  # a layer the compiler added (a copy, an affine, a transpose): not
                                          # the model's first conv for first_layer_dense
    divisor: int = 0                      # AVGPOOL: what every window's sum is divided by (0: kh * kw)
    clip_max: float = 0.0                 # a fused Clip(0, clip_max): the output scale is clip_max / 127

    @property
    def P(self) -> int:
        return len(self.masks) if self.masks else 1

    @property
    def K(self) -> int:
        return bin(self.masks[0]).count("1") if self.masks else self.kernel[0] * self.kernel[1]


def to_layers(g: Graph) -> List[Layer]:
    """One Layer per node; the graph has passed check_supported, so every node is a hardware op."""
    layers = []
    for n in g.nodes:
        x = n.inputs[0]
        in_shape = tuple(g.shapes[x][1:])
        c0, c1 = n.attr("sps_in_channels", [0, in_shape[0]])      # split_wide_reduction: a channel slice
        plane = int(np.prod(in_shape[1:]))
        in_shape = (c1 - c0,) + in_shape[1:]
        if n.attr("sps_flat_input"):                # fc_as_pointwise: x read as [C*H*W, 1, 1]
            in_shape = (int(np.prod(in_shape)), 1, 1)
        out_shape = tuple(g.shapes[n.outputs[0]][1:])
        layer = Layer(n.name, OP_OF[n.op], [x], n.outputs[0], in_shape, out_shape, list(n.sources),
                      relu=bool(n.attr("sps_relu")), in_byte_offset=c0 * plane)
        if n.op == "Conv":
            w = g.initializers[n.inputs[1]].astype(np.float64)
            b = (g.initializers[n.inputs[2]].astype(np.float64).reshape(-1)
                 if len(n.inputs) > 2 and n.inputs[2] else np.zeros(w.shape[0]))
            if w.shape[1] != in_shape[0]:
                raise UnsupportedOpError(f"{g.source}: node {n.name!r} (Conv) has weights {list(w.shape)} for an "
                                         f"input of {in_shape[0]} channels {list(g.shapes[x])}")
            layer.weights, layer.bias = w, b
            layer.fc, layer.weight_source = bool(n.attr("sps_fc")), str(n.attr("sps_weight", ""))
            layer.kernel = (w.shape[2], w.shape[3])
            if n.attr("sps_input_shift"):
                layer.input_shift = np.asarray(n.attr("sps_input_shift"), dtype=np.float64)
        elif n.op == "GlobalAveragePool":
            layer.kernel = in_shape[1:]
        elif n.op == "Add":
            layer.inputs = list(n.inputs)
        if n.op in ("Conv", "MaxPool", "AveragePool"):
            layer.strides = tuple(int(s) for s in n.attr("strides", [1, 1]))
            if n.op == "Conv":
                layer.pads = conv_pads(n, in_shape[1:], layer.kernel, layer.strides)
            else:
                layer.kernel = tuple(int(k) for k in n.attr("kernel_shape"))
                layer.pads = pool_pads(n, in_shape[1:], out_shape[1:], layer.kernel, layer.strides)
            if n.op == "AveragePool":
                layer.divisor = uniform_divisor(avgpool_divisors(n, g.opset, in_shape[1:], out_shape[1:],
                                                                 layer.kernel, layer.strides, layer.pads)) or 0
        if n.attr("sps_out_view"):                  # transpose_input: the layer writes its output in another shape
            layer.out_shape = tuple(int(v) for v in n.attr("sps_out_view"))
        layer.clip_max = float(n.attr("sps_clip_max", 0.0))
        layer.helper = bool(n.attr("sps_helper"))
        _check_geometry(g, n, layer)
        layers.append(layer)
    return layers


def _check_geometry(g: Graph, n: Node, layer: Layer) -> None:
    """The output size the descriptor implies must be the one ONNX inferred."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = layer.kernel, layer.strides, layer.pads
    _, h, w = layer.in_shape
    want = ((h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)
    if layer.op == Op.ADD:
        want = (h, w)
    if tuple(layer.out_shape[1:]) != want:
        raise UnsupportedOpError(f"{g.source}: node {n.name!r} ({n.op}): output {list(layer.out_shape)} does not "
                                 f"match kernel {kh}x{kw}, stride {sh}x{sw}, pads {list(layer.pads)} on input "
                                 f"{list(layer.in_shape)}")


def apply_pps(layers: List[Layer], pps: Optional[Tuple[int, int]], first_layer_dense: bool,
              hw: HwConfig) -> None:
    """Decide each CONV's mode: PPS (detected table kept, or projected to pps=(P, K)) or dense."""
    first_conv = next((l for l in layers if l.op == Op.CONV and not l.helper), None)
    for layer in layers:
        if layer.op != Op.CONV:
            continue
        layer.masks, layer.pps_how, layer.energy_kept = [], "dense", 1.0
        if pps is None or layer.fc or (first_layer_dense and layer is first_conv):
            continue
        try:
            pps_mod.check_eligible(layer.weights.shape, 1, layer.name)
        except PpsShapeError:
            continue   # not 3x3: dense by design
        info = pps_mod.detect(layer.weights, max_patterns=hw.max_patterns, name=layer.name)
        if info.K < 9:
            # already pruned (e.g. by sps-pynq prune): keep its table, do not re-project
            layer.masks, layer.pps_how = list(info.masks), "detected"
            continue
        P, K = pps
        proj = pps_mod.project(layer.weights, P, K, layer.name)
        layer.weights, layer.masks = proj.weights, list(proj.masks)
        layer.pps_how, layer.energy_kept = "projected", float(proj.energy_kept)


def fold_input_shifts(layers: List[Layer]) -> None:
    """A CONV with an input shift s (from fold_affine_into_next_conv) computes W * (x + s) + b = W * x + b': add
    b'[o] = sum over i and taps of W[o, i] * s[i] to its bias, with the final weights (after apply_pps)."""
    for layer in layers:
        if layer.op != Op.CONV or layer.input_shift is None:
            continue
        w = layer.weights
        per = w.shape[1] // len(layer.input_shift)        # a flat-input FC: every channel spans H*W weights
        shift = np.repeat(layer.input_shift, per).reshape(1, -1, 1, 1)
        layer.bias = layer.bias + (w * shift).sum(axis=(1, 2, 3))
        layer.input_shift = None
