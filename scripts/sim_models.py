"""Shared by bench_sim.py and accuracy_sim.py: a zoo model as (int8 Program, PPS-projected fp32 ONNX).

Workstation only (torch, onnx). The float model is the zoo network exported to ONNX with its 3x3 convs
projected onto PPS(P, K) (`compiler.project_onnx`); the program is compiled from the same ONNX with
calibration inputs drawn from the distribution the checks use (seeded N(0, 1)), as a deployment would
calibrate on its own data.
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(name: str, pps=(8, 4), num_calib: int = 64, seed: int = 1):
    """(program, projected onnx.ModelProto, input shape (C, H, W))."""
    import onnx
    from sps_pynq import zoo
    from sps_pynq.compiler import compile_model, project_onnx
    shape = zoo.input_shape(name)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / f"{name}.onnx"
        zoo.export_onnx(zoo.build(name), path, shape)
        proto = onnx.load(str(path))
    calib = np.random.default_rng(seed).standard_normal((num_calib,) + shape).astype(np.float32)
    program = compile_model(proto, pps=pps, calib=calib)
    return program, project_onnx(proto, pps=pps), shape


def ort_session(proto, threads: int = 0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
