"""What the user hands the compiler -> an onnx.ModelProto: an ONNX path, a ModelProto, a torch module or a zoo
name. torch is imported only on the torch paths."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Tuple

from ..errors import OnnxImportError
from .ir import load_onnx


def export_torch(module, input_shape: Sequence[int], dynamo: bool = False, opset: int = 17):
    """torch.nn.Module -> onnx.ModelProto through torch.onnx.export, batch 1 (dynamic batch dimension)."""
    import onnx
    import torch
    if input_shape is None:
        raise OnnxImportError("a torch model needs input_shape=(C, H, W) (or (1, C, H, W)) to be exported to ONNX")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    module = module.eval()
    x = torch.zeros(shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        kwargs = dict(input_names=["input"], output_names=["output"], opset_version=opset)
        with torch.no_grad():
            if dynamo:
                torch.onnx.export(module, (x,), path, dynamo=True, **kwargs)
            else:
                torch.onnx.export(module, (x,), path, dynamo=False,
                                  dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, **kwargs)
        return onnx.load(path)


def zoo_names() -> list:
    """Names of the models in sps_pynq.zoo (empty if the zoo or torch is not available)."""
    try:
        from .. import zoo
    except ImportError:
        return []
    for attr in ("NAMES", "MODELS", "BUILDERS", "names", "list_models"):
        v = getattr(zoo, attr, None)
        if v is not None:
            return sorted(v() if callable(v) else v)
    return []


def is_zoo_name(model) -> bool:
    if not isinstance(model, str) or os.path.exists(model) or model.endswith(".onnx"):
        return False
    return model in zoo_names()


def to_onnx(model, input_shape: Optional[Sequence[int]] = None, seed: int = 0) -> Tuple[object, str]:
    """(onnx.ModelProto, source description) for any accepted model kind."""
    import onnx
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "<onnx model>"
    if isinstance(model, (str, os.PathLike)):
        if is_zoo_name(model):
            from .. import zoo
            module = zoo.build(model, seed=seed)
            return export_torch(module, input_shape or zoo.input_shape(model)), f"zoo:{model}"
        return load_onnx(model), os.fspath(model)
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        return export_torch(model, input_shape), type(model).__name__
    raise OnnxImportError(f"cannot compile a {type(model).__name__}: give an ONNX file path, an onnx.ModelProto, "
                          f"a torch.nn.Module (with input_shape=) or a zoo model name")
