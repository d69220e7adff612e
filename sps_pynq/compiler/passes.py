"""Graph passes, in the manner of FINN/qonnx transformations: each one matches a pattern, guards it, rewrites it.

A pass takes a `Graph` and returns a new `Graph` and whether it changed anything; `PIPELINE` lists each pass once,
in the order the compiler runs them, and `run_pipeline` repeats the list until nothing changes (a fixpoint). It
can call a check after each pass that changed the graph (tests compare the graph against onnxruntime there).
After the pipeline, `check_supported` is the guard that every remaining node is one the hardware runs: Conv,
MaxPool, AveragePool, GlobalAveragePool, Add.

IR-only node attributes (export_onnx drops or translates them): `sps_relu` (a fused ReLU), `sps_fc` (a Conv made
from a Gemm: always dense), `sps_flat_input` (a 1x1 Conv reading its map as [1, C*H*W, 1, 1]), `sps_weight` (a
Conv's original ONNX weight tensor, for project_onnx), `sps_domain` (an op of a custom domain, rejected),
`sps_in_channels` ([c0, c1]: a Conv reading only those channels of its input map, from SplitWideReduction).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from ..errors import UnsupportedOpError
from ..hw.layout import group_weight_bytes
from .fit import KERNEL_FIELD_MAX
from .ir import Graph, Node, conv_pads

# Ops the importer understands: what the error message lists.
SUPPORTED_OPS = ("Conv (groups=1, dilation 1)", "BatchNormalization (after Conv)", "Relu", "MaxPool (ceil_mode=0)",
                 "AveragePool (ceil_mode=0)", "GlobalAveragePool", "ReduceMean over H,W", "Add (two activations)",
                 "Flatten/Reshape (to [N, C*H*W])", "Gemm/MatMul (after Flatten)", "Identity", "Dropout",
                 "Softmax (last op, runs on the host)")
SUPPORTED_TEXT = ", ".join(SUPPORTED_OPS)

# Ops left at the end of the pipeline: one hardware layer each.
HW_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Add")


class Pass:
    """One graph rewrite. Subclasses implement `apply(g) -> bool` on a private copy of the graph."""
    name = "pass"

    def run(self, g: Graph) -> Tuple[Graph, bool]:
        g = g.copy()
        changed = self.apply(g)
        return g, changed

    def apply(self, g: Graph) -> bool:
        raise NotImplementedError


def _single_use(g: Graph, tensor: str) -> bool:
    return len(g.consumers(tensor)) == 1 and tensor not in g.outputs


class RemoveIdentity(Pass):
    """Identity and Dropout (inference: the identity) disappear."""
    name = "remove_identity"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in ("Identity", "Dropout")]:
            if n.op == "Dropout" and len(n.outputs) > 1 and n.outputs[1] and g.consumers(n.outputs[1]):
                continue  # mask output in use: leave it for check_supported to reject
            g.bypass(n)
            changed = True
        return changed


class FoldBatchNorm(Pass):
    """Conv -> BatchNormalization becomes one Conv with scaled weights and shifted bias (float64)."""
    name = "fold_batchnorm"

    def apply(self, g):
        changed = False
        for bn in [n for n in g.nodes if n.op == "BatchNormalization"]:
            conv = g.producer(bn.inputs[0])
            if conv is None or conv.op != "Conv" or not _single_use(g, bn.inputs[0]):
                continue
            if bn.attr("training_mode", 0) or len([o for o in bn.outputs if o]) > 1:
                continue
            if not all(g.is_const(t) for t in bn.inputs[1:5]) or not g.is_const(conv.inputs[1]):
                continue
            gamma, beta, mean, var = (g.initializers[t].astype(np.float64) for t in bn.inputs[1:5])
            a = gamma / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
            w = g.initializers[conv.inputs[1]]
            out_c = w.shape[0]
            b = g.initializers[conv.inputs[2]] if len(conv.inputs) > 2 and conv.inputs[2] else np.zeros(out_c)
            w_name, b_name = conv.name + "__w_bn", conv.name + "__b_bn"
            g.initializers[w_name] = w * a.reshape(-1, *([1] * (w.ndim - 1)))
            g.initializers[b_name] = (b - mean) * a + beta
            conv.inputs = [conv.inputs[0], w_name, b_name]
            g.nodes.remove(bn)
            g.rename(bn.inputs[0], bn.outputs[0])
            conv.sources.append(bn.name)
            changed = True
        return changed


class ReduceMeanToGlobalPool(Pass):
    """ReduceMean over the two spatial axes (torch's x.mean((2, 3))) is a GlobalAveragePool."""
    name = "reducemean_to_globalpool"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "ReduceMean"]:
            shape = g.shapes.get(n.inputs[0], ())
            axes = n.attr("axes")
            if axes is None and len(n.inputs) > 1 and g.is_const(n.inputs[1]):
                axes = [int(a) for a in g.initializers[n.inputs[1]].ravel()]
            if len(shape) != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
                continue
            keep = n.attr("keepdims", 1)
            n.op, n.inputs, n.attrs = "GlobalAveragePool", [n.inputs[0]], {}
            if not keep:  # [1, C] holds the same bytes as [1, C, 1, 1]
                g.shapes[n.outputs[0]] = (1, shape[1], 1, 1)
            changed = True
        return changed


class MatMulAddToGemm(Pass):
    """MatMul(x, B) [+ Add(., c)] with constant B, c on a flat x becomes Gemm(x, B, c)."""
    name = "matmul_add_to_gemm"

    def apply(self, g):
        changed = False
        for mm in [n for n in g.nodes if n.op == "MatMul"]:
            if not g.is_const(mm.inputs[1]) or g.initializers[mm.inputs[1]].ndim != 2:
                continue
            if len(g.shapes.get(mm.inputs[0], ())) != 2:
                continue
            inputs = [mm.inputs[0], mm.inputs[1]]
            users = g.consumers(mm.outputs[0])
            if len(users) == 1 and users[0].op == "Add" and mm.outputs[0] not in g.outputs:
                add = users[0]
                other = [t for t in add.inputs if t != mm.outputs[0]]
                if len(other) == 1 and g.is_const(other[0]):
                    inputs.append(other[0])
                    g.nodes.remove(add)
                    g.rename(mm.outputs[0], add.outputs[0])
                    mm.sources.append(add.name)
            mm.op, mm.inputs, mm.attrs = "Gemm", inputs, {"transB": 0}
            changed = True
        return changed


class FuseRelu(Pass):
    """Relu after a Conv, Gemm, Add or pool becomes that layer's ReLU flag (`sps_relu`)."""
    name = "fuse_relu"
    PRODUCERS = ("Conv", "Gemm", "Add", "MaxPool", "AveragePool", "GlobalAveragePool")

    def apply(self, g):
        changed = False
        for relu in [n for n in g.nodes if n.op == "Relu"]:
            prod = g.producer(relu.inputs[0])
            if prod is None or prod.op not in self.PRODUCERS or prod.attr("sps_relu"):
                continue
            if not _single_use(g, relu.inputs[0]) or len(prod.outputs) != 1:
                continue
            g.nodes.remove(relu)
            g.rename(relu.inputs[0], relu.outputs[0])
            prod.attrs["sps_relu"] = 1
            prod.sources.append(relu.name)
            changed = True
        return changed


def _flat_source(g: Graph, tensor: str) -> Optional[str]:
    """The 4-D map [1, C, H, W] a flat [1, C*H*W] tensor was made from by Flatten/Reshape, if any."""
    prod = g.producer(tensor)
    if prod is None or prod.op not in ("Flatten", "Reshape", "Squeeze"):
        return None
    src = prod.inputs[0]
    s_in, s_out = g.shapes.get(src), g.shapes.get(tensor)
    if s_in and s_out and len(s_in) == 4 and s_out == (1, int(np.prod(s_in[1:]))):
        return src
    return None


class GemmToConv(Pass):
    """Gemm on a flattened map [1, C*H*W] becomes a Conv whose kernel is the whole map (output 1x1).

    The flatten is C-major, so W[N, C*H*W] reshaped to [N, C, H, W] is the same product on the same bytes.
    """
    name = "gemm_to_conv"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Gemm"]:
            x = n.inputs[0]
            shape = g.shapes.get(x, ())
            if len(shape) == 2:
                src = _flat_source(g, x)
                if src is None:
                    raise UnsupportedOpError(
                        f"{g.source}: node {n.name!r} (Gemm) reads {x!r} of shape {list(shape)}, which is not a "
                        f"flattened feature map [1, C, H, W]; supported: {SUPPORTED_TEXT}")
                n.sources.insert(0, g.producer(x).name)     # the flatten folded into this layer
                x, shape = src, g.shapes[src]
            if len(shape) != 4 or shape[0] != 1:
                raise UnsupportedOpError(f"{g.source}: node {n.name!r} (Gemm) input {x!r} has shape {list(shape)}; "
                                         f"expected a batch-1 feature map")
            if n.attr("transA", 0):
                raise UnsupportedOpError(f"{g.source}: node {n.name!r} (Gemm) has transA=1; only transA=0 is "
                                         f"supported")
            if not all(g.is_const(t) for t in n.inputs[1:] if t):
                raise UnsupportedOpError(f"{g.source}: node {n.name!r} (Gemm) has non-constant weights or bias; "
                                         f"only a Gemm with constant B and C is supported")
            b_mat = g.initializers[n.inputs[1]]
            w = (b_mat if n.attr("transB", 0) else b_mat.T) * float(n.attr("alpha", 1.0))
            out_n = w.shape[0]
            _, c, h, wd = shape
            if w.shape[1] != c * h * wd:
                raise UnsupportedOpError(f"{g.source}: node {n.name!r} (Gemm) has weights {list(b_mat.shape)} but "
                                         f"its input map {list(shape)} has {c * h * wd} values")
            bias = np.zeros(out_n)
            if len(n.inputs) > 2 and n.inputs[2]:
                c_arr = g.initializers[n.inputs[2]].astype(np.float64)
                if c_arr.size not in (1, out_n):
                    raise UnsupportedOpError(f"{g.source}: node {n.name!r} (Gemm) has bias C of shape "
                                             f"{list(c_arr.shape)}; expected {out_n} values (one per output)")
                bias = np.broadcast_to(c_arr.ravel(), (out_n,)) * float(n.attr("beta", 1.0))
            w_name, b_name = n.name + "__w_conv", n.name + "__b_conv"
            g.initializers[w_name] = w.reshape(out_n, c, h, wd).astype(np.float64)
            g.initializers[b_name] = bias
            relu = n.attr("sps_relu")
            n.op, n.inputs = "Conv", [x, w_name, b_name]
            n.attrs = {"kernel_shape": [h, wd], "strides": [1, 1], "pads": [0, 0, 0, 0], "sps_fc": 1}
            if relu:
                n.attrs["sps_relu"] = 1
            g.shapes[n.outputs[0]] = (1, out_n, 1, 1)
            changed = True
        return changed


class FcAsPointwise(Pass):
    """A Conv whose kernel is its whole input map [1, C, H, W] (a fully connected layer, from gemm_to_conv) with
    more than KERNEL_FIELD_MAX positions (the descriptor's kh/kw/nnz fields) becomes the same product as a 1x1
    Conv over the map read as [1, C*H*W, 1, 1]: the same bytes, since the map is CHW. The node keeps its input
    tensor [1, C, H, W] and says that it reads it flat with `sps_flat_input`; its weights [N, C, H, W] become
    [N, C*H*W, 1, 1].
    """
    name = "fc_as_pointwise"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Conv" and not n.attr("sps_flat_input")]:
            shape = g.shapes.get(n.inputs[0], ())
            if len(shape) != 4 or not g.is_const(n.inputs[1]):
                continue
            _, c, h, wd = shape
            w = g.initializers[n.inputs[1]]
            if tuple(w.shape[1:]) != (c, h, wd) or h * wd <= KERNEL_FIELD_MAX:
                continue
            strides = [int(s) for s in n.attr("strides", [1, 1])]
            if int(n.attr("group", 1)) != 1 or any(int(d) != 1 for d in n.attr("dilations", [1, 1])) \
                    or any(conv_pads(n, (h, wd), (h, wd), strides)):
                continue    # not a plain product over the whole map (check_supported rejects the first two)
            w_name = n.name + "__w_flat"
            g.initializers[w_name] = w.reshape(w.shape[0], c * h * wd, 1, 1)
            n.inputs = [n.inputs[0], w_name] + n.inputs[2:]
            n.attrs.pop("auto_pad", None)
            n.attrs.update({"kernel_shape": [1, 1], "pads": [0, 0, 0, 0], "sps_flat_input": 1})
            changed = True
        return changed


class FlattenToAlias(Pass):
    """A Flatten/Reshape of a map to [1, C*H*W] that is left (e.g. before the graph output) moves no bytes."""
    name = "flatten_to_alias"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in ("Flatten", "Reshape", "Squeeze")]:
            src, dst = n.inputs[0], n.outputs[0]
            s_in, s_out = g.shapes.get(src), g.shapes.get(dst)
            if not s_in or not s_out or s_in[0] != 1 or int(np.prod(s_in)) != int(np.prod(s_out)):
                continue
            if s_out not in (s_in, (1, int(np.prod(s_in[1:])))):
                continue
            g.bypass(n)
            changed = True
        return changed


class StripSoftmax(Pass):
    """A Softmax that produces a graph output runs on the host after dequantization (a host step)."""
    name = "strip_softmax"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Softmax"]:
            if n.outputs[0] not in g.outputs or g.consumers(n.outputs[0]):
                continue
            src = n.inputs[0]
            if src in g.inputs or src in g.outputs or len(g.consumers(src)) != 1:
                continue
            g.nodes.remove(n)
            shape = g.shapes.get(src)
            g.rename(src, n.outputs[0])   # the graph output keeps its name, now before the softmax
            if shape is not None:
                g.shapes[n.outputs[0]] = shape
            axis = int(n.attr("axis", -1 if g.opset >= 13 else 1))
            g.host_steps.append({"op": "softmax", "tensor": n.outputs[0], "axis": axis, "source": n.name})
            changed = True
        return changed


class DeadCodeElimination(Pass):
    """Nodes none of whose outputs is used (e.g. Shape/Gather chains that fed a Reshape) disappear. Unused
    initializers are dropped as well; that alone computes nothing differently, so it does not count as a change."""
    name = "dead_code_elimination"

    def apply(self, g):
        changed = False
        while True:
            used = set(g.outputs)
            for n in g.nodes:
                used.update(n.inputs)
            dead = [n for n in g.nodes if not any(o in used for o in n.outputs if o)]
            if not dead:
                break
            for n in dead:
                g.nodes.remove(n)
            changed = True
        inputs_used = set(t for n in g.nodes for t in n.inputs)
        for k in [k for k in g.initializers if k not in inputs_used]:
            del g.initializers[k]
        return changed


# Each pass once; run_pipeline repeats the list until a whole round changes nothing (a rewrite can enable another:
# a Relu after a Flatten fuses once the flatten is an alias, a dead Shape chain goes once its Reshape is gone).
PIPELINE: List[Pass] = [
    RemoveIdentity(),
    DeadCodeElimination(),
    FoldBatchNorm(),
    ReduceMeanToGlobalPool(),
    MatMulAddToGemm(),
    FuseRelu(),
    GemmToConv(),
    FcAsPointwise(),
    FlattenToAlias(),
    StripSoftmax(),
]
class SplitWideReduction(Pass):
    """A fully connected layer (a Conv from a Gemm, always dense) whose row group of weights (input channels x
    kernel taps x R rows) is larger than the weight buffer becomes partial Convs over slices of its input
    channels (`sps_in_channels`), each one a row group that fits half the buffer (so the next group's weights
    load while one computes), summed by a chain of Adds that carries the bias (in the first part) and the ReLU
    (on the last Add). Each partial sum is an int8 map with its own calibrated scale, so the layer's output gets
    the rounding of one int8 map per part instead of one (VGG16's first FC: 25,088 inputs, 6 parts on zcu104).
    It depends on the hardware, so it runs after the PIPELINE (compiler.import_and_lower), not in it.
    """
    name = "split_wide_reduction"

    def __init__(self, hw):
        self.hw = hw

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Conv" and n.attr("sps_fc") and not n.attr("sps_in_channels")]:
            _, c, h, w = g.shapes[n.inputs[0]]
            wt = g.initializers[n.inputs[1]]
            per_channel = (wt.shape[1] // c) * wt.shape[2] * wt.shape[3]       # weight taps per input channel
            rows = self.hw.rows
            if group_weight_bytes(c, per_channel, rows) <= self.hw.weight_buf_bytes:
                continue
            most = max(1, (self.hw.weight_buf_bytes // 2) // (per_channel * rows))
            while most > 1 and group_weight_bytes(most, per_channel, rows) > self.hw.weight_buf_bytes // 2:
                most -= 1
            self._split(g, n, c, h, w, per_channel, -(-c // most))
            changed = True
        return changed

    @staticmethod
    def _split(g, n, c, h, w, per_channel, parts):
        wt = g.initializers[n.inputs[1]]
        flat = wt.shape[1] != c                   # fc_as_pointwise: weights [N, C*H*W, 1, 1], per channel h*w
        step = per_channel if flat else 1
        bias = n.inputs[2] if len(n.inputs) > 2 else ""
        at = g.nodes.index(n)
        out, relu = n.outputs[0], n.attr("sps_relu")
        new, partial = [], []
        bounds = [c * j // parts for j in range(parts + 1)]
        for j in range(parts):
            c0, c1 = bounds[j], bounds[j + 1]
            w_name = f"{n.name}__w_part{j}"
            g.initializers[w_name] = wt[:, c0 * step:c1 * step]
            t = f"{out}__part{j}"
            g.shapes[t] = g.shapes[out]
            attrs = {k: v for k, v in n.attrs.items() if k != "sps_relu"}
            attrs["sps_in_channels"] = [c0, c1]
            inputs = [n.inputs[0], w_name] + ([bias] if j == 0 and bias else [])
            new.append(Node("Conv", f"{n.name}/part{j}", inputs, [t], attrs, list(n.sources)))
            partial.append(t)
        acc = partial[0]
        for j in range(1, parts):
            t = out if j == parts - 1 else f"{out}__sum{j}"
            g.shapes[t] = g.shapes[out]
            attrs = {"sps_relu": 1} if relu and j == parts - 1 else {}
            new.append(Node("Add", f"{n.name}/sum{j}", [acc, partial[j]], [t], attrs, list(n.sources)))
            acc = t
        g.nodes[at:at + 1] = new


def split_wide_reductions(g: Graph, hw) -> Graph:
    """SplitWideReduction for hardware `hw` (see there): the graph with every too-wide FC layer split."""
    return SplitWideReduction(hw).run(g)[0]


MAX_ROUNDS = 10     # rounds of the whole list before run_pipeline gives up; real models need 2 or 3


def run_pipeline(g: Graph, passes: List[Pass] = None, check: Optional[Callable[[Graph, str], None]] = None,
                 max_rounds: int = MAX_ROUNDS) -> Graph:
    """Run the passes in order, and the whole list again until no pass changes the graph (a fixpoint); then the
    guard `check_supported`. `check(graph, pass_name)` runs after each pass that changed the graph. A pipeline
    still changing after `max_rounds` rounds is a compiler bug (a pass that undoes another or keeps rewriting its
    own output): RuntimeError naming the passes."""
    passes = PIPELINE if passes is None else passes
    for _ in range(max_rounds):
        changed_by = []
        for p in passes:
            g, changed = p.run(g)
            if changed:
                changed_by.append(p.name)
                if check is not None:
                    check(g, p.name)
        if not changed_by:
            check_supported(g)
            return g
    raise RuntimeError(f"{g.source}: the graph passes reached no fixpoint in {max_rounds} rounds (round "
                       f"{max_rounds} still changed the graph in {', '.join(changed_by)}); this is a compiler bug, "
                       f"please report it with the model")


def _unsupported(g: Graph, n: Node, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"{g.source}: node {n.name!r} ({n.op}): {what}; supported: {SUPPORTED_TEXT}")


def check_supported(g: Graph) -> None:
    """Every node left must be a hardware layer with attributes the hardware runs."""
    for n in g.nodes:
        if n.attr("sps_domain"):
            raise _unsupported(g, n, f"op of domain {n.attr('sps_domain')!r} is not supported")
        if n.op not in HW_OPS:
            if n.op == "BatchNormalization" and n.attr("training_mode", 0):
                raise _unsupported(g, n, "training_mode=1 is not supported; export the model in eval mode")
            if n.op == "BatchNormalization":
                raise _unsupported(g, n, "a BatchNormalization is only supported right after a Conv (it is folded "
                                         "into the Conv's weights); this one is not")
            if n.op in ("Flatten", "Reshape", "Squeeze"):
                raise _unsupported(g, n, f"reshape of {list(g.shapes.get(n.inputs[0], ()))} to "
                                         f"{list(g.shapes.get(n.outputs[0], ()))} is not a flatten before a Gemm/output")
            if n.op == "Softmax":
                raise _unsupported(g, n, "a Softmax is only supported as the last op (it runs on the host)")
            raise _unsupported(g, n, "op is not supported")
        for t in n.inputs[:1] + n.outputs[:1]:
            shape = g.shapes.get(t)
            if shape is None or len(shape) != 4:
                raise _unsupported(g, n, f"tensor {t!r} has shape {list(shape) if shape else 'unknown'}; "
                                         f"the hardware works on 4-D batch-1 feature maps [1, C, H, W]")
            if shape[0] != 1:
                raise _unsupported(g, n, f"tensor {t!r} has batch {shape[0]} in the graph; export with batch 1 "
                                         f"or a dynamic batch (the runtime loops over a batch)")
        if n.op == "Conv":
            _check_conv(g, n)
        elif n.op in ("MaxPool", "AveragePool"):
            _check_pool(g, n)
        elif n.op == "Add":
            _check_add(g, n)


def _check_conv(g, n):
    if int(n.attr("group", 1)) != 1:
        raise _unsupported(g, n, f"grouped convolution (group={n.attr('group')}) is not supported; "
                                 f"only group=1 (no depthwise/grouped conv)")
    if any(int(d) != 1 for d in n.attr("dilations", [1, 1])):
        raise _unsupported(g, n, f"dilations={list(n.attr('dilations'))} is not supported; only dilation 1")
    if not g.is_const(n.inputs[1]) or (len(n.inputs) > 2 and n.inputs[2] and not g.is_const(n.inputs[2])):
        raise _unsupported(g, n, "weights and bias must be constant initializers")
    if g.initializers[n.inputs[1]].ndim != 4:
        raise _unsupported(g, n, f"weights {list(g.initializers[n.inputs[1]].shape)} are not 2-D conv weights")


def _check_pool(g, n):
    if int(n.attr("ceil_mode", 0)) != 0:
        raise _unsupported(g, n, "ceil_mode=1 is not supported; export the pool with ceil_mode=0")
    if any(int(d) != 1 for d in n.attr("dilations", [1, 1])):
        raise _unsupported(g, n, f"dilations={list(n.attr('dilations'))} is not supported; only dilation 1")
    if len([o for o in n.outputs if o]) > 1:
        raise _unsupported(g, n, "the indices output of MaxPool is not supported")
    if n.op == "AveragePool" and any(int(p) for p in n.attr("pads", [0, 0, 0, 0])) \
            and not int(n.attr("count_include_pad", 0)):
        raise _unsupported(g, n, f"pads={list(n.attr('pads'))} with count_include_pad=0 is not supported "
                                 f"(the divisor must be the window size); use no padding or count_include_pad=1")
    if n.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID") and n.op == "AveragePool" \
            and not int(n.attr("count_include_pad", 0)):
        raise _unsupported(g, n, f"auto_pad={n.attr('auto_pad')} with count_include_pad=0 is not supported")


def _check_add(g, n):
    if len(n.inputs) != 2 or any(g.is_const(t) for t in n.inputs):
        raise _unsupported(g, n, "only an Add of two activations (a residual add) is supported, "
                                 "not an Add with a constant")
    sa, sb = g.shapes.get(n.inputs[0]), g.shapes.get(n.inputs[1])
    if sa != sb:
        raise _unsupported(g, n, f"inputs have shapes {list(sa or ())} and {list(sb or ())}; broadcasting is not "
                                 f"supported, both must be the same [1, C, H, W]")
