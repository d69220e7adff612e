"""Activation ranges from calibration inputs: run the lowered float model (BN folded, PPS-projected) with
onnxruntime, every activation tensor exposed as an output, and keep each tensor's largest |value|.

The scale of a tensor is max|x| / 127 over the whole calibration set (max-abs, no clipping): simple, and the
int8 range then never saturates on the calibration data. A tensor that is zero on every input gets scale 1/127.
"""
from __future__ import annotations

import warnings
from typing import Dict, List

import numpy as np

from ..errors import CompileError
from ..progress import progress
from .ir import Graph, export_onnx

BATCH = 8   # calibration inputs per onnxruntime call


def synthetic_inputs(shape, count: int, seed: int) -> np.ndarray:
    """A seeded standard-normal set, used when the user gives no calibration data."""
    return np.random.default_rng(seed).standard_normal((count,) + tuple(shape)).astype(np.float32)


def prepare(calib, input_shape, num_calib: int, seed: int, source: str, onnx_shape=None):
    """(inputs [N, C, H, W] float32, synthetic?) from user data, a .npy path, or a seeded synthetic set. User data
    may also have the input's ONNX shape `onnx_shape` (without batch; e.g. [K] for a flat input the core reads as
    [K, 1, 1]) when that holds as many values."""
    if calib is None:
        if int(num_calib) < 1:
            raise CompileError(f"{source}: num_calib={num_calib} synthetic calibration inputs; give at least 1 "
                               f"(--num-calib N) or real inputs (--calib DATA.npy)")
        msg = (f"no calibration data for {source}; using {num_calib} seeded synthetic standard-normal "
               f"inputs (seed {seed}). Activation scales from real inputs are more accurate: pass calib=/--calib")
        warnings.warn(msg, stacklevel=3)
        return synthetic_inputs(input_shape, num_calib, seed), True
    if isinstance(calib, (str, bytes)) or hasattr(calib, "__fspath__"):
        try:
            calib = np.load(calib, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CompileError(f"calibration file {calib}: cannot read it as a .npy array ({e})") from e
    x = np.asarray(calib, dtype=np.float32)
    want = tuple(input_shape)
    alt = tuple(onnx_shape) if onnx_shape is not None else None
    if alt and alt != want and all(isinstance(d, int) for d in alt) and int(np.prod(alt)) == int(np.prod(want)):
        if x.shape == alt:
            x = x[None]
        if x.ndim == len(alt) + 1 and tuple(x.shape[1:]) == alt:
            x = x.reshape((x.shape[0],) + want)
    if x.shape == want:
        x = x[None]
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or x.shape[0] == 0:
        raise CompileError(f"calibration data has shape {list(x.shape)}; {source} wants [N, "
                           f"{', '.join(str(s) for s in want)}] (N inputs of the model's input shape)")
    return x, False


def tensor_ranges(g: Graph, tensors: List[str], inputs: np.ndarray) -> Dict[str, float]:
    """max |value| of each tensor over the calibration inputs, from onnxruntime on the float graph."""
    import onnxruntime as ort
    model = export_onnx(g, extra_outputs=tensors)
    # a symbolic batch dimension lets one call run BATCH inputs
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # graph outputs stay observable under every optimization level (fusions keep them)
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:   # onnxruntime raises its own Fail/InvalidGraph types
        raise CompileError(f"{g.source}: onnxruntime cannot run the lowered float model for calibration "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    names = [o.name for o in sess.get_outputs()]
    wanted = [t for t in tensors if t in names]
    ranges = {t: 0.0 for t in tensors}
    in_name = g.inputs[0]
    ranges[in_name] = float(np.abs(inputs).max())
    for start in progress(range(0, len(inputs), BATCH), desc="calibration", unit="batch"):
        outs = sess.run(wanted, {in_name: inputs[start:start + BATCH]})
        for t, v in zip(wanted, outs):
            if not np.all(np.isfinite(v)):
                raise CompileError(f"calibration: tensor {t!r} is not finite (inf/nan) on calibration input "
                                   f"{start}..{start + len(v) - 1}; check the model and the inputs")
            ranges[t] = max(ranges[t], float(np.abs(v).max()))
    return ranges


def scale_of(max_abs: float) -> float:
    return max_abs / 127.0 if max_abs > 0 else 1.0 / 127.0

