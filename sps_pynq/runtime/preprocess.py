"""What the host does around the core (docs/arithmetic.md, "Host side"): quantize inputs, dequantize outputs,
run host steps such as a final softmax. numpy only: this runs on the board."""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import ModelFileError


def apply_preprocess(x: np.ndarray, pre: dict) -> np.ndarray:
    """A model's input preprocessing on a batch (N, C, ...): x' = (x * scale - mean) / std, with mean and std one
    value or one per channel (axis 1), in float64 so the quantization that follows rounds what float32 would."""
    x = np.asarray(x, dtype=np.float64) * pre["scale"]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(pre["mean"], np.float64).reshape(shape)
    std = np.asarray(pre["std"], np.float64).reshape(shape)
    return (x - mean) / std


def quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """x_q = sat8(round_half_even(x / s_x)), numpy's rint."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale), -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float) -> np.ndarray:
    return q.astype(np.float32) * np.float32(scale)


# The host steps apply_host_steps runs (a packed model's "host_steps"; the model file lists what it accepts).
HOST_STEP_OPS = ("softmax", "log_softmax")


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """log(softmax(x)) without overflow: (x - max) - log(sum(exp(x - max)))."""
    x = x.astype(np.float32)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def apply_host_steps(outputs: dict, steps: List[dict]) -> dict:
    """Apply the program's host steps in order to the dequantized outputs {name: array with batch axis}."""
    for step in steps:
        op = step.get("op")
        name = step.get("tensor")
        if name is None and len(outputs) == 1:
            name = next(iter(outputs))
        if name not in outputs:
            raise ModelFileError(f"host step {step} names tensor {name!r}, which is not an output "
                             f"({', '.join(outputs)}); re-pack the model")
        if op == "softmax":
            outputs[name] = softmax(outputs[name], int(step.get("axis", -1)))
        elif op == "log_softmax":
            outputs[name] = log_softmax(outputs[name], int(step.get("axis", -1)))
        else:
            raise ModelFileError(f"host step {op!r} is not supported by this sps-pynq (only "
                                 f"{', '.join(HOST_STEP_OPS)}); update sps-pynq or re-pack the model")
    return outputs
