"""The compiler: ONNX / torch model -> a packed `Program` (and a `.spsmodel` file).

    model -> frontend (ONNX) -> ir.import_onnx -> passes.run_pipeline -> lower.to_layers -> lower.apply_pps
          -> calibrate (onnxruntime on the lowered float model) -> quantize -> emit.build_program

See docs/compiler.md for the passes and the choices made. Workstation-only (onnx, onnxruntime; torch only for
torch models and zoo names).
"""
from __future__ import annotations

import time
from typing import Optional, Sequence, Tuple, Union

from .. import __version__
from ..errors import CompileError, OnnxImportError, UnsupportedOpError
from ..hw.config import HwConfig, get_config
from ..hw.descriptor import Op
from ..program import Program
from . import calibrate, emit, fit, frontend, ir, lower, passes, quantize

__all__ = ["compile_model", "pack", "project_onnx", "import_and_lower", "CompileError", "OnnxImportError",
           "UnsupportedOpError"]


def _hw(hw) -> HwConfig:
    try:
        return get_config(hw)
    except KeyError as e:
        raise CompileError(str(e.args[0])) from e


def _pps_arg(pps) -> Optional[Tuple[int, int]]:
    if pps is None or pps is False or pps == "dense":
        return None
    if isinstance(pps, str):
        from ..pps import parse_pps_spec
        return parse_pps_spec(pps)
    P, K = (int(v) for v in pps)
    return P, K


def import_and_lower(model, hw="zcu104", pps=(8, 4), first_layer_dense=False, input_shape=None, seed=0):
    """(graph after the passes, float layers with their PPS decision, source name). No calibration."""
    hwc = _hw(hw)
    proto, source = frontend.to_onnx(model, input_shape, seed)
    g = ir.import_onnx(proto, source)
    if len(g.inputs) != 1:
        raise OnnxImportError(f"{source}: the model has {len(g.inputs)} inputs {g.inputs}; only one is supported")
    g = passes.run_pipeline(g)
    layers = lower.to_layers(g)
    lower.apply_pps(layers, _pps_arg(pps), first_layer_dense, hwc)
    fit.check_fits(layers, hwc)          # before the (slower) calibration
    return g, layers, source


def _with_layer_weights(g: ir.Graph, layers) -> ir.Graph:
    """The graph with each Conv's weights replaced by its layer's (PPS-projected) float weights."""
    g = g.copy()
    by_name = {layer.name: layer for layer in layers}
    for n in g.nodes:
        layer = by_name.get(n.name)
        if n.op == "Conv" and layer is not None:
            w_name = n.name + "__w_sps"
            g.initializers[w_name] = layer.weights.reshape(g.initializers[n.inputs[1]].shape)
            n.inputs = [n.inputs[0], w_name] + n.inputs[2:]
    return g


def compile_model(model, hw: Union[str, HwConfig] = "zcu104", pps=(8, 4), first_layer_dense: bool = False,
                  calib=None, num_calib: int = 32, seed: int = 0, input_shape: Optional[Sequence[int]] = None
                  ) -> Program:
    """Compile a model for the SPS core.

    model: onnx.ModelProto, ONNX file path, torch.nn.Module (with input_shape=(C, H, W)) or a zoo name.
    pps: (P, K), "PxK", or None for an all-dense program. first_layer_dense: keep the first conv dense.
    calib: float inputs [N, C, H, W] (array or .npy path); None = `num_calib` seeded standard-normal inputs,
    with a warning.
    """
    t0 = time.perf_counter()
    hwc = _hw(hw)
    pps_t = _pps_arg(pps)
    g, layers, source = import_and_lower(model, hwc, pps_t, first_layer_dense, input_shape, seed)
    in_name = g.inputs[0]
    x, synthetic = calibrate.prepare(calib, g.shapes[in_name][1:], num_calib, seed, source)
    float_g = _with_layer_weights(g, layers)
    activations = sorted({t for layer in layers for t in layer.inputs + [layer.output]})
    ranges = calibrate.tensor_ranges(float_g, activations, x)
    quant, scales = quantize.quantize(layers, ranges, calibrate.scale_of)
    shapes = {t: g.shapes[t] for t in activations}
    metadata = {
        "source": source,
        "compiler": f"sps-pynq {__version__}",
        "pps": f"{pps_t[0]}x{pps_t[1]}" if pps_t else "dense",
        "first_layer_dense": bool(first_layer_dense),
        "calibration": {"count": int(len(x)), "synthetic": bool(synthetic), "seed": seed if synthetic else None,
                        "method": "max-abs"},
        "onnx_inputs": {t: list(g.onnx_shapes.get(t, ())) for t in g.inputs},
        "onnx_outputs": {t: list(g.onnx_shapes.get(t, ())) for t in g.outputs},
    }
    program = emit.build_program(layers, quant, scales, hwc, list(g.inputs), list(g.outputs), shapes,
                                 g.host_steps, metadata)
    program.metadata["compile_seconds"] = round(time.perf_counter() - t0, 3)
    return program


def pack(model, out_path, **options) -> Program:
    """compile_model(model, **options), saved atomically as a .spsmodel at out_path."""
    from .. import model_file
    program = compile_model(model, **options)
    model_file.save(program, out_path)
    return program


def project_onnx(model, pps=(8, 4), first_layer_dense: bool = False, hw="zcu104", input_shape=None, seed=0):
    """The same ONNX model with every 3x3 conv's weights PPS-projected, as fp32: the float model the int8
    program approximates. The pattern tables are chosen on the BN-folded weights (as compile_model does) and
    applied as masks to the original Conv weights, so the model keeps its structure (BN stays, scaled rows
    keep their zeros)."""
    import onnx
    from onnx import numpy_helper
    proto, source = frontend.to_onnx(model, input_shape, seed)
    g, layers, _ = import_and_lower(proto, hw, pps, first_layer_dense, input_shape, seed)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    constants = ir.onnx_constants(out.graph)
    from ..pps import kernel_mask
    for layer in layers:
        if layer.op != Op.CONV or not layer.masks:
            continue
        tensor = constants.get(layer.weight_source)
        if tensor is None:
            raise CompileError(f"{source}: layer {layer.name}: Conv weights {layer.weight_source!r} are not an "
                               f"initializer or Constant; cannot write the projected weights back")
        w = numpy_helper.to_array(tensor)
        masked = (w * kernel_mask(w.shape, layer.masks)).astype(w.dtype)
        tensor.CopyFrom(numpy_helper.from_array(masked, tensor.name))
    return out
