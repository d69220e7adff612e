"""What the user hands the compiler -> an onnx.ModelProto: an ONNX path, a ModelProto, a torch module or a zoo
name. torch is imported only on the torch paths."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Tuple

from ..errors import OnnxImportError
from .ir import load_onnx


def export_torch(module, input_shape: Sequence[int], dynamo: bool = False):
    """torch.nn.Module -> onnx.ModelProto through torch.onnx.export (sps_pynq.zoo.export_onnx), batch 1."""
    import onnx
    from .. import zoo
    if input_shape is None:
        raise OnnxImportError("a torch model needs input_shape=(C, H, W) to be exported to ONNX")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3:
        raise OnnxImportError(f"input_shape must be (C, H, W), got {list(input_shape)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        zoo.export_onnx(module, path, shape, dynamo=dynamo)
        return onnx.load(path)


def zoo_names() -> list:
    """Names of the models in sps_pynq.zoo (empty if the zoo or torch is not available)."""
    try:
        from .. import zoo
    except ImportError:
        return []
    return list(zoo.names())


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
