"""The compiler: ONNX / torch model -> a packed `Program` (and a `.spsmodel` file).

    model -> frontend (ONNX) -> ir.import_onnx (prepare: batch 1, constants folded, opset 11..21)
          -> passes.run_pipeline -> lower.to_layers -> lower.apply_pps -> lower.fold_input_shifts
          -> fill_rows.merge_classes (with fill_rows) -> fit.check_fits
          -> calibrate (onnxruntime on the lowered float model) -> quantize -> emit.build_program

`explain.explain` (sps-pynq pack --explain) runs the same stages without stopping at the first blocking node.

Every stage reads its options from one `CompileOptions` (options.py).

See docs/compiler.md for the passes and the choices made. Workstation-only (onnx, onnxruntime; torch only for
torch models and zoo names).
"""
from __future__ import annotations

import time
from typing import Optional

from .. import __version__
from ..errors import CompileError, OnnxImportError, UnsupportedOpError
from ..hw.descriptor import Op
from ..program import Program
from . import calibrate, emit, fill_rows, fit, frontend, ir, lower, passes, quantize
from .options import CompileOptions

__all__ = ["compile_model", "pack", "project_onnx", "import_and_lower", "CompileOptions", "CompileError",
           "OnnxImportError", "UnsupportedOpError"]


def import_and_lower(model, options: Optional[CompileOptions] = None, **kwargs):
    """(graph after the passes, float layers with their PPS decision, source name). No calibration.
    Options: a CompileOptions and/or its fields by name (hw, pps, first_layer_dense, fill_rows, input_shape, seed)."""
    opts = CompileOptions.of(options, **kwargs)
    proto, source = frontend.to_onnx(model, opts.input_shape, opts.seed)
    g = ir.import_onnx(proto, source)
    if len(g.inputs) != 1:
        raise OnnxImportError(f"{source}: the model has {len(g.inputs)} inputs {g.inputs}; only one is supported")
    g = passes.run_pipeline(g)
    g = passes.split_wide_reductions(g, opts.hw)     # depends on the hardware: after the generic pipeline
    layers = lower.to_layers(g)
    lower.apply_pps(layers, opts.pps, opts.first_layer_dense, opts.hw)
    lower.fold_input_shifts(layers)      # with the final (projected) weights
    if opts.fill_rows:
        fill_rows.merge_classes(layers, opts.hw)
    fit.check_fits(layers, opts.hw)      # before the (slower) calibration
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


def compile_model(model, options: Optional[CompileOptions] = None, **kwargs) -> Program:
    """Compile a model for the SPS core.

    model: onnx.ModelProto, ONNX file path, torch.nn.Module (with input_shape=(C, H, W)) or a zoo name.
    options: a CompileOptions, and/or its fields by name: hw, pps ((P, K), "PxK", or None for an all-dense
    program), first_layer_dense (keep the first conv dense), fill_rows (default True: merge small residue classes
    or let them share row groups when faster, compiler/fill_rows.py; False: the encoding exactly as pruned),
    keep_outputs (default True: chain layers through the activation buffer, compiler/keep.py), calib
    (float inputs [N, C, H, W], array or .npy path; None = `num_calib` seeded standard-normal inputs, with a
    warning), num_calib, seed, input_shape.
    """
    t0 = time.perf_counter()
    opts = CompileOptions.of(options, **kwargs)
    g, layers, source = import_and_lower(model, opts)
    in_name = g.inputs[0]
    x, synthetic = calibrate.prepare(opts.calib, g.shapes[in_name][1:], opts.num_calib, opts.seed, source,
                                     tuple(g.onnx_shapes.get(in_name, ()))[1:])
    float_g = _with_layer_weights(g, layers)
    activations = sorted({t for layer in layers for t in layer.inputs + [layer.output]})
    ranges = calibrate.tensor_ranges(float_g, activations, x)
    quant, scales = quantize.quantize(layers, ranges, calibrate.scale_of)
    shapes = {t: g.shapes[t] for t in activations}
    metadata = {
        "source": source,
        "compiler": f"sps-pynq {__version__}",
        "pps": opts.pps_text,
        "first_layer_dense": bool(opts.first_layer_dense),
        "fill_rows": bool(opts.fill_rows),
        "keep_outputs": bool(opts.keep_outputs),
        "calibration": {"count": int(len(x)), "synthetic": bool(synthetic), "seed": opts.seed if synthetic else None,
                        "method": "max-abs"},
        "onnx_inputs": {t: list(g.onnx_shapes.get(t, ())) for t in g.inputs},
        "onnx_outputs": {t: list(g.onnx_shapes.get(t, ())) for t in g.outputs},
    }
    program = emit.build_program(layers, quant, scales, opts.hw, list(g.inputs), list(g.outputs), shapes,
                                 g.host_steps, metadata, keep_outputs=opts.keep_outputs)
    program.metadata["compile_seconds"] = round(time.perf_counter() - t0, 3)
    return program


def pack(model, out_path, options: Optional[CompileOptions] = None, **kwargs) -> Program:
    """compile_model(model, options, **kwargs), saved atomically as a .spsmodel at out_path."""
    from .. import model_file
    program = compile_model(model, options, **kwargs)
    model_file.save(program, out_path)
    return program


def project_onnx(model, options: Optional[CompileOptions] = None, **kwargs):
    """The same ONNX model with every 3x3 conv's weights PPS-projected, as fp32: the float model the int8
    program approximates. The pattern tables are chosen on the BN-folded weights (as compile_model does) and
    applied as masks to the original Conv weights, so the model keeps its structure (BN stays, scaled rows
    keep their zeros). Options as for compile_model (calibration options and fill_rows are not used: the masks are
    the pruned tables, never the merged ones fill_rows would store)."""
    import dataclasses

    import onnx
    from onnx import numpy_helper
    opts = dataclasses.replace(CompileOptions.of(options, **kwargs), fill_rows=False)
    proto, source = frontend.to_onnx(model, opts.input_shape, opts.seed)
    g, layers, _ = import_and_lower(proto, opts)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    constants = ir.onnx_constants(out.graph)
    folded = None
    from ..pps import kernel_mask
    for layer in layers:
        if layer.op != Op.CONV or not layer.masks:
            continue
        tensor = constants.get(layer.weight_source)
        if tensor is None:
            # computed by a constant subgraph (a Reshape of an initializer, ...): the Convs that read it read its
            # folded value (prepare.fold_constants) as an initializer of its own, masked
            if folded is None:
                folded = ir.onnx_constants(ir.prepare(proto, source).graph)
            if layer.weight_source not in folded:
                raise CompileError(f"{source}: layer {layer.name}: Conv weights {layer.weight_source!r} are not "
                                   f"constant; cannot write the projected weights back")
            tensor = numpy_helper.from_array(numpy_helper.to_array(folded[layer.weight_source]),
                                             layer.weight_source + "__sps_folded")
            out.graph.initializer.append(tensor)
            tensor = out.graph.initializer[-1]          # append copied it
            for node in out.graph.node:
                if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] == layer.weight_source:
                    node.input[1] = tensor.name
            constants[layer.weight_source] = tensor
        w = numpy_helper.to_array(tensor)
        masked = (w * kernel_mask(w.shape, layer.masks)).astype(w.dtype)
        tensor.CopyFrom(numpy_helper.from_array(masked, tensor.name))
    return out
