"""The compiler's small plain IR, and the way in (ONNX import) and out (ONNX export for onnxruntime).

A `Graph` is a list of `Node`s in topological order, the initializers as numpy arrays (float64 after import,
so that folding does not lose precision), and the static shape of every activation tensor. Tensor names are
those of the ONNX file, so calibration ranges and error messages speak the user's names. Batch is fixed to 1
inside the graph (the runtime loops over a batch).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import OnnxImportError
from .prepare import MAX_OPSET, MIN_OPSET, _infer, prepare  # noqa: F401  (the opsets the passes handle)


@dataclass
class Node:
    op: str                       # ONNX op type (IR-only attributes start with "sps_", see passes.py)
    name: str                     # readable name: the ONNX node name, or made up from op and output
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, object] = field(default_factory=dict)
    sources: List[str] = field(default_factory=list)   # ONNX nodes folded into this one

    def attr(self, key, default=None):
        return self.attrs.get(key, default)


@dataclass
class Graph:
    nodes: List[Node]
    initializers: Dict[str, np.ndarray]
    shapes: Dict[str, Tuple[int, ...]]      # every activation tensor, batch included (batch = 1)
    inputs: List[str]                       # graph inputs that are not initializers
    outputs: List[str]
    source: str = "<model>"                 # file name or description, for messages
    opset: int = 0
    host_steps: List[dict] = field(default_factory=list)
    onnx_shapes: Dict[str, Tuple] = field(default_factory=dict)   # graph in/outputs as declared (dims or names)

    def copy(self) -> "Graph":
        g = copy.copy(self)
        g.nodes = [copy.copy(n) for n in self.nodes]
        for n in g.nodes:
            n.inputs, n.outputs, n.attrs, n.sources = list(n.inputs), list(n.outputs), dict(n.attrs), list(n.sources)
        g.initializers = dict(self.initializers)
        g.shapes = dict(self.shapes)
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.host_steps = [dict(s) for s in self.host_steps]
        return g

    def producer(self, tensor: str) -> Optional[Node]:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> List[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def is_const(self, tensor: str) -> bool:
        return tensor in self.initializers

    def rename(self, old: str, new: str) -> None:
        """Every use and definition of tensor `old` becomes `new`."""
        for n in self.nodes:
            n.inputs = [new if t == old else t for t in n.inputs]
            n.outputs = [new if t == old else t for t in n.outputs]
        self.inputs = [new if t == old else t for t in self.inputs]
        self.outputs = [new if t == old else t for t in self.outputs]
        if old in self.shapes and new not in self.shapes:
            self.shapes[new] = self.shapes[old]

    def bypass(self, node: Node) -> None:
        """Remove a node whose output equals its first input (Identity, Dropout, a flattening Reshape)."""
        src, dst = node.inputs[0], node.outputs[0]
        self.nodes.remove(node)
        if dst in self.outputs and src not in self.outputs and src not in self.inputs:
            # keep the user's output name: the producer of src now writes dst (with src's shape)
            shape = self.shapes.get(src)
            self.rename(src, dst)
            if shape is not None:
                self.shapes[dst] = shape
        else:
            self.rename(dst, src)

    def ops(self) -> List[str]:
        return [n.op for n in self.nodes]


def conv_pads(n: Node, in_hw, kernel, strides) -> Tuple[int, int, int, int]:
    """(top, left, bottom, right) padding of a Conv or pool node on an input of in_hw, auto_pad resolved."""
    auto = n.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", "", None):
        p = [int(v) for v in n.attr("pads", [0, 0, 0, 0])]
        return p[0], p[1], p[2], p[3]
    if auto == "VALID":
        return 0, 0, 0, 0
    pads = []
    for size, k, s in zip(in_hw, kernel, strides):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        small = total // 2
        pads.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
    (t, b), (l, r) = pads
    return t, l, b, r


def pool_pads(n: Node, in_hw, out_hw, kernel, strides) -> Tuple[int, int, int, int]:
    """conv_pads, plus the bottom/right rows and columns that ceil_mode=1 adds: the windows that ONNX's output
    size (out_hw, from shape inference) needs beyond the padded input. The core ignores padding in MAXPOOL and
    sums only in-bounds positions in AVGPOOL, so extra padding there is what ceil_mode means."""
    t, l, b, r = conv_pads(n, in_hw, kernel, strides)
    extra = [max(0, (o - 1) * s + k - (i + p0 + p1))
             for o, s, k, i, p0, p1 in zip(out_hw, strides, kernel, in_hw, (t, l), (b, r))]
    return t, l, b + extra[0], r + extra[1]


def avgpool_divisors(n: Node, opset: int, in_hw, out_hw, kernel, strides, pads) -> np.ndarray:
    """The number ONNX divides each output window of AveragePool `n` by, [out_h, out_w] (float; 0 where a window
    holds no input position): the in-bounds count of each window divided by the pool of an all-ones input, as
    onnx.reference.ReferenceEvaluator computes it (count_include_pad, ceil_mode and auto_pad all included)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    attrs = {k: v for k, v in n.attrs.items() if not k.startswith("sps_")}
    node = helper.make_node("AveragePool", ["x"], ["y"], **attrs)
    ones = np.ones((1, 1) + tuple(in_hw), dtype=np.float32)
    y = ReferenceEvaluator(node, opsets={"": opset}).run(None, {"x": ones})[0][0, 0].astype(np.float64)
    counts = []
    for o, s, k, i, p in zip(out_hw, strides, kernel, in_hw, pads[:2]):
        start = np.arange(o) * s - p
        counts.append(np.clip(start + k, 0, i) - np.clip(start, 0, i))
    inside = np.outer(counts[0], counts[1]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        div = np.where(inside > 0, inside / np.where(y != 0, y, np.nan), 0.0)
    near = np.rint(div)
    return np.where(np.abs(div - near) <= 1e-5 * np.maximum(near, 1), near, div)   # float32 sums of ones


def uniform_divisor(divisors: np.ndarray) -> Optional[int]:
    """The one divisor of every window (AVGPOOL folds one divisor into its multiplier), or None."""
    values = np.unique(divisors)
    if len(values) == 1 and values[0] >= 1 and values[0] == int(values[0]):
        return int(values[0])
    return None


def _attr_value(a):
    import onnx
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def _dims(vi) -> Tuple:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)


def load_onnx(model, source: str = "<model>"):
    """An onnx.ModelProto from a path or a ModelProto, with OnnxImportError naming the file if it is broken."""
    import onnx
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise OnnxImportError(f"{path}: no such ONNX file")
    try:
        m = onnx.load(path)
    except Exception as e:  # protobuf raises DecodeError, RuntimeError, ... for broken files
        raise OnnxImportError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e}); "
                              f"export it again (torch.onnx.export) and check the file is complete") from e
    if not m.graph.node:
        raise OnnxImportError(f"{path}: the ONNX file holds no graph nodes (empty or truncated file?)")
    return m


def onnx_constants(graph) -> Dict[str, object]:
    """Every constant tensor of an ONNX graph by name: its initializers and the `value` of its Constant nodes, as
    the TensorProtos themselves (numpy_helper.to_array reads them; project_onnx writes masked weights back)."""
    consts = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = a.t
    return consts


def import_onnx(model, source: Optional[str] = None) -> Graph:
    """ONNX file or ModelProto -> Graph with static shapes (after prepare.prepare: batch 1, every all-constant
    node an initializer, an opset the passes handle)."""
    import onnx
    from onnx import numpy_helper
    if source is None:
        source = "<onnx model>" if isinstance(model, onnx.ModelProto) else os.fspath(model)
    model = load_onnx(model, source)
    onnx_shapes = {vi.name: _dims(vi) for vi in list(model.graph.input) + list(model.graph.output)}
    model = prepare(model, source)       # batch 1, constants folded, an opset from MIN_OPSET to MAX_OPSET
    opset = 0
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = imp.version
    inferred = _infer(model, source)
    g = inferred.graph
    inits = {name: numpy_helper.to_array(t) for name, t in onnx_constants(g).items()}
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = _dims(vi)
        if dims and all(isinstance(d, int) for d in dims):
            shapes[vi.name] = tuple(dims)
    nodes = []
    used_names = set()
    for k, n in enumerate(g.node):
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and "value" in attrs:
            continue                     # an initializer (onnx_constants); prepare folds every other Constant
        if n.domain not in ("", "ai.onnx"):
            attrs["sps_domain"] = n.domain
        name = n.name or f"{n.op_type}_{k}"
        while name in used_names:
            name += "_"
        used_names.add(name)
        if n.op_type == "Conv" and len(n.input) > 1:
            attrs["sps_weight"] = n.input[1]     # the original weight tensor (project_onnx writes it back)
        nodes.append(Node(n.op_type, name, list(n.input), list(n.output), attrs, [name]))
    inits = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in inits.items()}
    inputs = [vi.name for vi in g.input if vi.name not in inits]
    for name in inputs:
        if name not in shapes:
            raise OnnxImportError(f"{source}: graph input {name!r} has no static shape "
                                  f"{onnx_shapes.get(name)}; only the batch dimension may be dynamic")
        elem = [vi for vi in g.input if vi.name == name][0].type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise OnnxImportError(f"{source}: graph input {name!r} has element type "
                                  f"{onnx.TensorProto.DataType.Name(elem)}; only float32 inputs are supported")
    return Graph(nodes, inits, shapes, inputs, [vi.name for vi in g.output], source, opset,
                 onnx_shapes=onnx_shapes)


def export_onnx(g: Graph, extra_outputs: List[str] = (), opset: int = 17):
    """Graph -> float32 onnx.ModelProto that onnxruntime runs (IR-only attributes become ONNX nodes again).

    `extra_outputs`: intermediate tensors to expose as graph outputs (calibration reads their ranges).
    """
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    used = set()
    for n in g.nodes:
        inputs = list(n.inputs)
        attrs = {k: v for k, v in n.attrs.items() if not k.startswith("sps_")}
        arrays = {t: g.initializers[t] for t in inputs if t in g.initializers}
        ch = n.attr("sps_in_channels")
        if ch:
            # split_wide_reduction's partial Conv reads channels [c0, c1) of its input: a Slice for onnxruntime
            sliced = f"{inputs[0]}__ch{ch[0]}_{ch[1]}"
            if sliced not in used:
                used.add(sliced)
                consts = {f"{sliced}__{k}": np.array(v, dtype=np.int64)
                          for k, v in (("starts", [ch[0]]), ("ends", [ch[1]]), ("axes", [1]))}
                inits += [numpy_helper.from_array(a, k) for k, a in consts.items()]
                nodes.append(helper.make_node("Slice", [inputs[0]] + list(consts), [sliced], name=sliced))
            inputs[0] = sliced
        if n.attr("sps_input_shift"):
            # fold_affine_into_next_conv's Conv of x + s (s per channel of the map it reads): an Add before it
            shift = np.asarray(n.attr("sps_input_shift"), dtype=np.float32).reshape(1, -1, 1, 1)
            shifted, s_name = f"{n.name}__shifted", f"{n.name}__shift"
            inits.append(numpy_helper.from_array(shift, s_name))
            nodes.append(helper.make_node("Add", [inputs[0], s_name], [shifted], name=shifted))
            inputs[0] = shifted
        if n.attr("sps_flat_input"):
            # fc_as_pointwise's 1x1 Conv over the map read as [1, C*H*W, 1, 1] is the Conv whose kernel is the
            # whole map [C, H, W]: onnxruntime gets that form, the model's own, so calibration sees the same floats
            _, c, h, w = g.shapes[n.inputs[0]]
            c = (ch[1] - ch[0]) if ch else c
            inputs[1] = n.inputs[1] + "__map"
            arrays = {inputs[1]: arrays.pop(n.inputs[1]).reshape(-1, c, h, w), **arrays}
            attrs["kernel_shape"] = [h, w]
        for t, arr in arrays.items():
            if t not in used:
                used.add(t)
                arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
                inits.append(numpy_helper.from_array(arr, t))
        outputs = list(n.outputs)
        if n.attr("sps_relu"):
            outputs[0] = n.outputs[0] + "__prerelu"
        if n.attr("sps_out_view"):
            # transpose_input's Conv writes [1, C*H, W, 1]; its tensor is [1, C, H, W] (the same bytes): a Reshape
            view = outputs[0] + "__view"
            shape = f"{n.name}__view_shape"
            inits.append(numpy_helper.from_array(np.array((-1,) + tuple(g.shapes[n.outputs[0]][1:]), dtype=np.int64),
                                                 shape))
            nodes.append(helper.make_node(n.op, inputs, [view] + outputs[1:], name=n.name, **attrs))
            nodes.append(helper.make_node("Reshape", [view, shape], outputs[:1], name=n.name + "__reshape"))
        else:
            nodes.append(helper.make_node(n.op, inputs, outputs, name=n.name, **attrs))
        if n.attr("sps_clip_max"):
            # a fused Clip(0, max)
            bounds = [f"{n.name}__clip_min", f"{n.name}__clip_max"]
            inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), t)
                      for v, t in zip((0.0, n.attr("sps_clip_max")), bounds)]
            nodes.append(helper.make_node("Clip", [outputs[0]] + bounds, [n.outputs[0]], name=n.name + "__clip"))
        elif n.attr("sps_relu"):
            nodes.append(helper.make_node("Relu", [outputs[0]], [n.outputs[0]], name=n.name + "__relu"))
    ins = [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(g.shapes[t])) for t in g.inputs]
    outs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in g.outputs]
    for t in extra_outputs:
        if t not in g.outputs and t not in g.inputs:
            outs.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "sps_ir", ins, outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
