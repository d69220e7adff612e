"""What the host does around the core (docs/arithmetic.md, "Host side"): quantize inputs, dequantize outputs,
run host steps such as a final softmax. numpy only: this runs on the board."""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import ModelFileError


def quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """x_q = sat8(round_half_even(x / s_x)), numpy's rint."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale), -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float) -> np.ndarray:
    return q.astype(np.float32) * np.float32(scale)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


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
        else:
            raise ModelFileError(f"host step {op!r} is not supported by this sps-pynq (only softmax); "
                             f"update sps-pynq or re-pack the model")
    return outputs
