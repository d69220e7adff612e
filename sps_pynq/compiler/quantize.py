"""Float layers + activation scales -> the integers of docs/arithmetic.md.

- weights: symmetric int8 per output channel, s_w[o] = max|w[o]| / 127, w_q = rint(w / s_w) in -127..127, taken
  after PPS projection, so pruned weights stay exactly 0;
- bias: int32, b_q = rint(b / (s_in * s_w[o]));
- requantization of a real factor f by (M, S): S = 30 - floor(log2 f), so that M = rint(f * 2^S) has 31
  significant bits (2^30 <= M < 2^31), then S clamped to 0..63 and M to 0..2^31-1.
  * tiny f (S would exceed 63): S = 63 and M = rint(f * 2^63) has fewer bits, down to 0 (the output is then
    always 0: the layer's output scale is more than 2^32 times its input scale times its weight scale);
  * huge f (S would be negative, f >= 2^31): no (M, S) represents it, CompileError.
- CONV: f[o] = s_in * s_w[o] / s_out. AVGPOOL: f = s_in / (divisor * s_out) (the divisor folded into M: the
  window size, or the one number ONNX divides every window by, e.g. with count_include_pad=1 or ceil_mode).
- a layer with a fused Clip(0, max) gets the output scale max / 127: the int8 saturation at 127 is the clip.
  ADD: f_a = s_a / s_out and f_b = s_b / s_out with one common S chosen for the larger of the two.
  MAXPOOL: no requantization, the output has the input's scale.
- the accumulator never overflows int32: per output channel, 128 * sum|w_q| + |b_q| < 2^31 is checked
  (int8 inputs reach -128), else CompileError naming the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import CompileError
from ..hw.descriptor import Op
from .lower import Layer

M_MAX = 2**31 - 1
S_MAX = 63
ACC_LIMIT = 2**31
BIAS_LIMIT = 2**30     # bias headroom: leaves half of int32 for the products


@dataclass
class QuantLayer:
    """The integer parameters of one layer."""
    in_scales: list                 # one per input tensor
    out_scale: float
    weights: Optional[np.ndarray] = None   # int8 [O, I, kh, kw]
    bias: Optional[np.ndarray] = None      # int64 [O] (fits int32)
    mult: Optional[np.ndarray] = None      # int64 [O] (CONV) or [1] / [2] (AVGPOOL / ADD)
    shift: Optional[np.ndarray] = None     # int64, same shape as mult (ADD: one shift)
    weight_scales: Optional[np.ndarray] = None
    acc_worst: int = 0                     # the largest |accumulator| possible (CONV, AVGPOOL)
    extra: Dict[str, float] = field(default_factory=dict)


def requant_params(f, layer: str = "layer"):
    """(M, S) int64 arrays with M * 2^-S ~= f, for an array of real factors f >= 0."""
    f = np.atleast_1d(np.asarray(f, dtype=np.float64))
    if np.any(~np.isfinite(f)) or np.any(f < 0):
        bad = f[~np.isfinite(f) | (f < 0)][:4]
        raise CompileError(f"{layer}: requantization factors must be finite and >= 0, got {bad}")
    M = np.zeros(f.shape, dtype=np.int64)
    S = np.zeros(f.shape, dtype=np.int64)
    pos = f > 0
    if np.any(f >= 2.0**31):
        raise CompileError(f"{layer}: requantization factor {float(f.max()):.3g} is >= 2^31 (the output scale is "
                           f"tiny against the input scale); no multiplier/shift pair represents it. Check the "
                           f"calibration data: an all-zero or near-constant layer output causes this")
    e = np.floor(np.log2(f[pos])).astype(np.int64)
    S[pos] = np.clip(30 - e, 0, S_MAX)
    M[pos] = np.clip(np.rint(f[pos] * np.exp2(S[pos].astype(np.float64))), 0, M_MAX).astype(np.int64)
    return M, S


def requant_value(M, S) -> np.ndarray:
    """The real factor an (M, S) pair represents."""
    return np.asarray(M, dtype=np.float64) / np.exp2(np.asarray(S, dtype=np.float64))


def quantize_weights(w, min_scale: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(w_q, s_w): symmetric int8 per output channel (axis 0) of weights of any rank, s_w[o] = max|w[o]| / 127
    (at least min_scale[o] when given), w_q = rint(w / s_w) in -127..127, so zeros stay exactly 0. A channel
    whose scale is 0 (all-zero weights, no minimum) gets scale 1. Also the storage report's quantizer."""
    w = np.asarray(w, dtype=np.float64)
    O = w.shape[0]
    s_w = np.abs(w.reshape(O, -1)).max(axis=1) / 127.0
    if min_scale is not None:
        s_w = np.maximum(s_w, min_scale)
    s_w = np.where(s_w > 0, s_w, 1.0)          # all-zero channel with zero bias: any scale will do
    w_q = np.clip(np.rint(w / s_w.reshape((O,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
    return w_q, s_w


def quantize_conv(layer: Layer, s_in: float, s_out: float) -> QuantLayer:
    w, b = layer.weights, layer.bias
    O = w.shape[0]
    # a channel whose bias would not fit int32 at this weight scale gets a coarser weight scale
    w_q, s_w = quantize_weights(w, min_scale=np.abs(b) / (s_in * BIAS_LIMIT))
    b_q = np.rint(b / (s_in * s_w)).astype(np.int64)
    acc = 128 * np.abs(w_q.astype(np.int64)).reshape(O, -1).sum(axis=1) + np.abs(b_q)
    worst = int(acc.max()) if acc.size else 0
    if worst >= ACC_LIMIT:
        o = int(np.argmax(acc))
        raise CompileError(f"layer {layer.name}: the int32 accumulator could overflow: output channel {o} has "
                           f"128 * sum|w_q| + |b_q| = {worst} >= 2^31 (weights {list(w.shape)}, input "
                           f"{list(layer.in_shape)}); split the layer or prune it (fewer nonzero weights)")
    M, S = requant_params(s_in * s_w / s_out, f"layer {layer.name}")
    return QuantLayer([s_in], s_out, w_q, b_q, M, S, s_w, worst)


def quantize_avgpool(layer: Layer, s_in: float, s_out: float) -> QuantLayer:
    window = layer.divisor or layer.kernel[0] * layer.kernel[1]
    M, S = requant_params(s_in / (window * s_out), f"layer {layer.name}")
    return QuantLayer([s_in], s_out, mult=M, shift=S, acc_worst=128 * layer.kernel[0] * layer.kernel[1])


def quantize_add(layer: Layer, s_a: float, s_b: float, s_out: float) -> QuantLayer:
    fa, fb = s_a / s_out, s_b / s_out
    _, S = requant_params(max(fa, fb), f"layer {layer.name}")
    S = int(S[0])
    M = np.clip(np.rint(np.array([fa, fb]) * 2.0**S), 0, M_MAX).astype(np.int64)
    return QuantLayer([s_a, s_b], s_out, mult=M, shift=np.array([S], dtype=np.int64))


def quantize(layers, ranges: Dict[str, float], scale_of):
    """({layer name: QuantLayer}, {tensor: scale}): scales from the calibration ranges (max |x|) through
    `scale_of`, except MAXPOOL outputs, which keep their input's scale."""
    scales: Dict[str, float] = {}
    q: Dict[str, QuantLayer] = {}
    for layer in layers:
        for t in layer.inputs:
            if t not in scales:
                scales[t] = scale_of(ranges[t])
        s_in = scales[layer.inputs[0]]
        if layer.op == Op.MAXPOOL:
            scales[layer.output] = s_in
            q[layer.name] = QuantLayer([s_in], s_in)
            continue
        s_out = layer.clip_max / 127.0 if layer.clip_max > 0 else scale_of(ranges[layer.output])
        scales[layer.output] = s_out
        if layer.op == Op.CONV:
            q[layer.name] = quantize_conv(layer, s_in, s_out)
        elif layer.op == Op.AVGPOOL:
            q[layer.name] = quantize_avgpool(layer, s_in, s_out)
        else:
            q[layer.name] = quantize_add(layer, s_in, scales[layer.inputs[1]], s_out)
    return q, scales
