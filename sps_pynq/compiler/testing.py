"""Helpers for tests and scripts: tiny ONNX graphs, onnxruntime runs, and running a Program on the numpy
reference of the arithmetic (sps_pynq.reference) with host-side quantization as docs/arithmetic.md says."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np


def make_model(nodes, inputs: Sequence[Tuple[str, Sequence]], outputs: Sequence[str], inits: Dict[str, np.ndarray],
               opset: int = 17):
    """An onnx.ModelProto from helper nodes, (name, shape) float inputs, output names, initializer arrays."""
    from onnx import TensorProto, helper, numpy_helper
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    init = [numpy_helper.from_array(np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f"
                                    else np.asarray(v), k) for k, v in inits.items()]
    graph = helper.make_graph(list(nodes), "tiny", ins, outs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def ort_run(model, x: np.ndarray) -> List[np.ndarray]:
    """Every graph output of `model` (ModelProto or path) on input x, with onnxruntime."""
    import onnxruntime as ort
    data = model if isinstance(model, str) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})


def quantize_input(x: np.ndarray, scale: float) -> np.ndarray:
    """Host-side input quantization: sat8(round_half_even(x / s))."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale), -128, 127).astype(np.int8)


def run_reference(program, x: np.ndarray) -> List[np.ndarray]:
    """Run one input (C, H, W) through the program on the numpy reference; dequantized outputs (C, H, W)."""
    from .. import reference
    arena = np.zeros(program.arena_size, dtype=np.uint8)
    arena[:len(program.image)] = np.frombuffer(program.image, dtype=np.uint8)
    t = program.inputs[0]
    q = quantize_input(np.asarray(x).reshape(t.shape), t.scale)
    arena[t.offset:t.offset + t.nbytes] = q.view(np.uint8).ravel()
    reference.run_program(arena, program.descriptors(), program.hw)
    outs = []
    for o in program.outputs:
        y = arena[o.offset:o.offset + o.nbytes].view(np.int8).astype(np.float64) * o.scale
        outs.append(y.reshape(o.shape))
    return outs


def cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float(np.allclose(a, b))


def ort_per_sample(model, xs: np.ndarray) -> List[np.ndarray]:
    """Every graph output of `model` on each sample of xs [N, ...] (one onnxruntime call per sample: a model may
    declare batch 1), stacked [N, ...]."""
    runs = [ort_run(model, np.asarray(x)[None]) for x in xs]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def sim_against_onnxruntime(model, xs: np.ndarray, calib=None, **options):
    """Compile `model` (calibrated on `calib`, default xs) and run xs [N, ...] on the sim backend through Session;
    (program, [(sim output, onnxruntime output of the model itself, output scale)] per output)."""
    from ..runtime.session import Session
    from . import compile_model
    program = compile_model(model, calib=xs if calib is None else calib, **options)
    want = ort_per_sample(model, xs)
    with Session(program, backend="sim") as s:
        got = s.run(xs)
    got = got if isinstance(got, list) else [got]
    return program, [(g.reshape(w.shape), w, t.scale) for g, w, t in zip(got, want, program.outputs)]
