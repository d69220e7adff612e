"""The ONNX model as the passes want it, before it becomes the IR (ir.import_onnx calls `prepare`):

1. **batch of one**: a symbolic or zero batch dimension of the graph input becomes 1; a fixed batch N > 1 too,
   if the model treats its samples independently (every float tensor computed from the input has shape
   [N, ...] with the batch and [1, ...] without; a Flatten of axis 0, for one, does not), since the runtime
   runs one sample at a time;
2. **constant folding**: every node whose inputs are all constant (Constant, Reshape/Transpose/Cast/Concat/Gather of
   initializers, arithmetic on constants, ...) and every Shape/Size of a tensor whose shape is static becomes an
   initializer of the same name. `onnx.reference.ReferenceEvaluator` evaluates each node at the model's own opset,
   so no op needs code of its own here, and this runs before the opset conversion (fewer ops to convert);
3. **opset**: the passes handle opsets MIN_OPSET..MAX_OPSET. A newer model whose ops changed since MAX_OPSET only
   in the types they accept (Conv, the pools, Reshape, ... at 22-25 added bfloat16, float8, int4) is relabelled;
   anything else, older or newer, goes through `onnx.version_converter`. A conversion that fails is one
   OnnxImportError naming the op and both opsets.
"""
from __future__ import annotations

import copy
import re
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import OnnxImportError

MIN_OPSET, MAX_OPSET = 11, 21

# Ops never folded although their inputs are constant (there are none, or they draw random numbers).
NOT_FOLDED = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli")
# Ops whose output depends only on the shape of their input: folded when that shape is static.
SHAPE_ONLY = ("Shape", "Size")


def model_opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def prepare(model, source: str):
    """A prepared copy of the onnx.ModelProto `model`: batch 1, constants folded, an opset the passes handle."""
    model = copy.deepcopy(model)
    for k, node in enumerate(model.graph.node):
        if not node.name:                   # the IR's node names, as if nothing had been folded
            node.name = f"{node.op_type}_{k}"
    fix_batch(model, source)
    fold_constants(model, source)
    return convert_opset(model, source)


# -- 1. batch ------------------------------------------------------------------------------------------------------

def _graph_inputs(model):
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def _infer(model, source: str):
    import onnx
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:
        raise OnnxImportError(f"{source}: ONNX shape inference failed ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[-1][:300]}); check the model with onnx.checker") from e


def _typed_shapes(model) -> Dict[str, Tuple[tuple, int]]:
    """{tensor: (dims, elem_type)} of every tensor the (inferred) graph declares; unknown dims are None."""
    out = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        out[vi.name] = (dims, t.elem_type)
    return out


def fix_batch(model, source: str) -> Dict[str, int]:
    """Set the batch dimension of every graph input to 1; {input: N} for those whose batch was a fixed N > 1
    (after checking that the model treats those N samples independently)."""
    fixed, changed = {}, False
    original = copy.deepcopy(model) if any(
        vi.type.tensor_type.shape.dim and vi.type.tensor_type.shape.dim[0].dim_value > 1
        for vi in _graph_inputs(model)) else None
    for vi in _graph_inputs(model):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        if len(t.shape.dim) < 2:
            raise OnnxImportError(f"{source}: graph input {vi.name!r} has {len(t.shape.dim)} dimension(s); the "
                                  f"first is the batch, so a sample needs at least one more ([N, K] vectors, "
                                  f"[N, C, W] or [N, C, H, W] maps)")
        d = t.shape.dim[0]
        if d.HasField("dim_value") and d.dim_value > 1:
            fixed[vi.name] = int(d.dim_value)
        if not d.HasField("dim_value") or d.dim_value != 1:
            d.Clear()
            d.dim_value = 1
            changed = True
    if changed:     # shapes declared for the old batch would override what inference finds for batch 1
        del model.graph.value_info[:]
        for vi in model.graph.output:
            vi.type.tensor_type.ClearField("shape")
    if fixed:
        _check_samples_independent(original, model, fixed, source)
    return fixed


def _check_samples_independent(original, model, fixed: Dict[str, int], source: str) -> None:
    import onnx
    with_n = _typed_shapes(_infer(original, source))
    with_1 = _typed_shapes(_infer(model, source))
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    (name, n), = list(fixed.items())[:1]
    reached = set(fixed)
    for node in model.graph.node:
        if any(t in reached for t in node.input):
            reached.update(t for t in node.output if t)
    for t in [t for t in with_1 if t in reached and t in with_n]:
        (s1, e1), (sn, _) = with_1[t], with_n[t]
        if e1 not in floats or None in s1 or None in sn or not s1:
            continue        # (a scalar has no batch axis: a constant cast like the input, or a reduction that blocks)
        if not s1 or s1[0] != 1 or sn != (n,) + s1[1:]:
            node = next((m for m in model.graph.node if t in m.output), None)
            made = f" (output of {node.op_type} {node.name!r})" if node is not None else ""
            raise OnnxImportError(
                f"{source}: graph input {name!r} has a fixed batch of {n}, and tensor {t!r}{made} is {list(sn)} "
                f"with it but {list(s1)} with a batch of 1: the model does not treat its samples one by one (it "
                f"reshapes across the batch axis, or a constant or a statistic spans the batch), so it cannot run "
                f"one sample at a time; export it with batch 1 or a dynamic batch")


# -- 2. constant folding ---------------------------------------------------------------------------------------------

def _numpy_dtype(elem_type: int):
    from onnx import helper
    return helper.tensor_dtype_to_np_dtype(elem_type)


def fold_constants(model, source: str) -> int:
    """Replace every all-constant node (and Shape/Size of a static shape) by initializers, evaluated with
    onnx.reference.ReferenceEvaluator; the number of nodes folded. Nodes the evaluator cannot run stay."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator
    g = model.graph
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    typed = _typed_shapes(_infer(model, source)) if any(n.op_type in SHAPE_ONLY for n in g.node) else {}
    consts = {t.name: t for t in g.initializer}
    values: Dict[str, np.ndarray] = {}
    outputs = {vi.name for vi in g.output}
    keep, folded = [], []

    def value(name):
        if name not in values:
            values[name] = numpy_helper.to_array(consts[name])
        return values[name]

    for node in g.node:
        feeds = _feeds(node, consts, typed, value)
        if feeds is None or any(o in outputs for o in node.output):
            keep.append(node)
            continue
        try:
            results = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
        except Exception:       # the evaluator lacks this op or these types: the node stays (and may block later)
            keep.append(node)
            continue
        for name, v in zip(node.output, results):
            if name:
                arr = np.asarray(v)
                values[name] = arr
                consts[name] = numpy_helper.from_array(arr, name)
                folded.append(consts[name])
    if folded:
        del g.node[:]
        g.node.extend(keep)
        g.initializer.extend(folded)
        names = {t.name for t in folded}
        kept_info = [vi for vi in g.value_info if vi.name not in names]
        del g.value_info[:]
        g.value_info.extend(kept_info)
    return len(folded)


def _feeds(node, consts, typed, value) -> Optional[dict]:
    """The evaluator's inputs when `node` can be folded, else None."""
    if node.domain not in ("", "ai.onnx") or node.op_type in NOT_FOLDED:
        return None
    if any(a.type in (5, 10) for a in node.attribute):      # GRAPH, GRAPHS: If/Loop/Scan bodies are not folded
        return None
    present = [t for t in node.input if t]
    if node.op_type in SHAPE_ONLY and present and present[0] not in consts:
        dims, elem = typed.get(present[0], (None, 0))
        if dims is None or None in dims or not elem:
            return None
        return {present[0]: np.zeros(dims, dtype=_numpy_dtype(elem))}
    if not node.input and node.op_type != "Constant":
        return None
    if not all(t in consts for t in present):
        return None
    return {t: value(t) for t in present}


# -- 3. opset -------------------------------------------------------------------------------------------------------

def _signature(schema):
    """What a schema says apart from the types: attributes (name, type, required, default), inputs, outputs."""
    attrs = tuple(sorted((a.name, int(a.type), bool(a.required), str(a.default_value).strip())
                         for a in schema.attributes.values()))
    return attrs, tuple((i.name, int(i.option)) for i in schema.inputs), \
        tuple((o.name, int(o.option)) for o in schema.outputs)


def _changed_beyond(op: str, opset: int, target: int) -> Optional[str]:
    """None if op's definition at `opset` is its definition at `target` up to the types it accepts, else why."""
    from onnx import defs
    try:
        hi = defs.get_schema(op, opset, "")
    except Exception:
        return "is not an op of the standard domain"
    if hi.since_version <= target:
        return None
    try:
        lo = defs.get_schema(op, target, "")
    except Exception:
        return f"does not exist at opset {target}"
    return None if _signature(hi) == _signature(lo) else f"changed at opset {hi.since_version}"


def convert_opset(model, source: str):
    """The model at an opset in MIN_OPSET..MAX_OPSET (relabelled or converted), or OnnxImportError."""
    import onnx
    from onnx import version_converter
    opset = model_opset(model)
    if MIN_OPSET <= opset <= MAX_OPSET or opset == 0:      # 0: no standard op at all (only other domains)
        return model
    if opset > onnx.defs.onnx_opset_version() or opset < 1:
        raise OnnxImportError(f"{source}: opset {opset} is unknown to the installed onnx {onnx.__version__} (it "
                              f"knows 1 to {onnx.defs.onnx_opset_version()}); update onnx or export with an "
                              f"opset from {MIN_OPSET} to {MAX_OPSET}")
    target = min(max(opset, MIN_OPSET), MAX_OPSET)
    ops = sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")})
    if opset > MAX_OPSET and not any(_changed_beyond(op, opset, target) for op in ops):
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                imp.version = target
        return model
    if model.ir_version < 4:
        model.ir_version = 4        # folded constants are initializers that are no graph inputs (IR 3 wanted both)
    try:
        return version_converter.convert_version(model, target)
    except Exception as e:
        text = str(e)
        m = re.search(r"No Adapter (?:From|To) Version \$?(\d+) for (\w+)", text)
        new_op = re.search(r"No Previous Version of (\w+) exists", text)
        if m:
            why = f"onnx.version_converter has no adapter for {m.group(2)} from its opset-{m.group(1)} form"
        elif new_op:
            why = f"{new_op.group(1)} does not exist at opset {target}"
        else:
            why = f"onnx.version_converter failed: {type(e).__name__}: {text.strip().splitlines()[-1][:200]}"
        raise OnnxImportError(f"{source}: cannot convert the model from opset {opset} to opset {target} (the "
                              f"compiler's passes handle {MIN_OPSET} to {MAX_OPSET}): {why}; export the model "
                              f"with an opset from {MIN_OPSET} to {MAX_OPSET}") from e
