"""Graph passes, in the manner of FINN/qonnx transformations: each one matches a pattern, guards it, rewrites it.

A pass takes a `Graph` and returns a new `Graph` and whether it changed anything; `PIPELINE` lists each pass once,
in the order the compiler runs them, and `run_pipeline` repeats the list until nothing changes (a fixpoint). Then
the `LAST_RESORT` passes, which give a node a hardware layer of its own (a per-channel affine as a 1x1 Conv, a Relu
as a 1x1 MaxPool), run once each and the pipeline resumes: a node gets a layer of its own only when no pass could
fold it into another. `run_pipeline` can call a check after each pass that changed the graph (tests compare the
graph against onnxruntime there). At the end, `check_supported` is the guard that every remaining node is one the
hardware runs (Conv, MaxPool, AveragePool, GlobalAveragePool, Add); `blockers` lists every node that is not, with
the reason and what would fix it (`sps-pynq pack --explain`).

IR-only node attributes (export_onnx drops or translates them): `sps_relu` (a fused ReLU), `sps_clip_max` (a fused
Clip(0, max): the layer's output scale is max / 127, so that the int8 saturation is the clip), `sps_fc` (a Conv made
from a Gemm: always dense), `sps_flat_input` (a 1x1 Conv reading its map as [1, C*H*W, 1, 1]), `sps_weight` (a
Conv's original ONNX weight tensor, for project_onnx), `sps_domain` (an op of a custom domain, rejected),
`sps_in_channels` ([c0, c1]: a Conv reading only those channels of its input map, from SplitWideReduction),
`sps_out_view` ([C, H, W]: the shape the layer writes its output tensor's bytes in, from TransposeInput),
`sps_helper` (a layer the compiler added: a copy, a per-channel affine, a transpose, an activation of its own),
`sps_input_shift` (per input channel s: a Conv of x + s, from FoldAffineIntoNextConv; lower adds it to the bias).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..errors import UnsupportedOpError
from ..hw.layout import group_weight_bytes
from .fit import KERNEL_FIELD_MAX
from .ir import Graph, Node, avgpool_divisors, conv_pads, pool_pads, uniform_divisor

# What the importer understands: what the error message lists.
SUPPORTED_OPS = ("Conv (groups=1; a dilated one as a larger kernel)", "MaxPool/AveragePool (2-D, no dilation)",
                 "GlobalAveragePool", "ReduceMean over H,W", "Add (two maps of one shape)",
                 "Add/Sub/Mul/Div by a per-channel constant and BatchNormalization (folded into a Conv/Gemm, "
                 "else a 1x1 Conv)", "Relu", "Clip(0, max)", "Flatten/Reshape (to [1, C*H*W])",
                 "Gemm/MatMul (constant weights, on a flat vector or a flattened map)",
                 "Transpose (an NHWC input, or before a Flatten and a Gemm)", "Identity", "Dropout",
                 "Softmax (last op, runs on the host)")
SUPPORTED_TEXT = ", ".join(SUPPORTED_OPS)

# Ops left at the end of the pipeline: one hardware layer each.
HW_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Add")
# Ops that are a per-channel affine a * x + b when their other operands are constants (affine_of).
AFFINE_OPS = ("Add", "Sub", "Mul", "Div", "BatchNormalization")


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


def _map_shape(g: Graph, tensor: str) -> Optional[Tuple[int, ...]]:
    """The [1, C, H, W] map the core sees for a tensor: itself if 4-D, [1, K, 1, 1] for a flat [1, K] (the same
    bytes), else None."""
    s = g.shapes.get(tensor)
    if s and len(s) == 4 and s[0] == 1:
        return tuple(s)
    if s and len(s) == 2 and s[0] == 1:
        return (1, int(s[1]), 1, 1)
    return None


def _absorb(g: Graph, layer: Node, node: Node) -> None:
    """Remove `node`, whose work `layer` now does: layer writes node's output tensor (keeping its own shape)."""
    src, dst = layer.outputs[0], node.outputs[0]
    shape = g.shapes.get(src)
    g.nodes.remove(node)
    g.rename(src, dst)
    if shape is not None:
        g.shapes[dst] = shape
    layer.sources.append(node.name)


def _bypass(g: Graph, n: Node) -> bool:
    """g.bypass(n) for a node that moves no bytes; but when it would make a graph output the graph input itself,
    the node becomes a copy layer instead (a 1x1 MaxPool: no requantization, the same int8 values), so that the
    program still has a layer that writes the output. False if neither is possible."""
    src, dst = n.inputs[0], n.outputs[0]
    if dst in g.outputs and src in g.inputs:
        shape = _map_shape(g, src)
        if shape is None:
            return False
        n.op, n.inputs, n.outputs = "MaxPool", [src], [dst]
        n.attrs = {"kernel_shape": [1, 1], "sps_helper": 1}
        g.shapes[src] = g.shapes[dst] = shape
        return True
    g.bypass(n)
    return True


def _new_name(g: Graph, base: str) -> str:
    name, k = base, 0
    taken = set(g.initializers) | set(g.shapes) | {t for n in g.nodes for t in n.inputs + n.outputs}
    while name in taken:
        k += 1
        name = f"{base}{k}"
    return name


def _channel_vector(c: np.ndarray, shape) -> Optional[np.ndarray]:
    """The per-channel values of constant `c` broadcast to `shape` (axis 1 is the channel), if c varies along no
    other axis and broadcasting does not enlarge `shape`; else None."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or np.asarray(c).dtype.kind not in "fiu":
        return None
    try:
        if tuple(np.broadcast_shapes(np.shape(c), shape)) != shape:
            return None
        full = np.broadcast_to(np.asarray(c, dtype=np.float64), shape)
    except ValueError:
        return None
    per = np.moveaxis(full, 1, 0).reshape(shape[1], -1)
    if per.shape[1] == 0 or not np.all(per == per[:, :1]):
        return None
    return per[:, 0].copy()


def affine_of(g: Graph, n: Node) -> Optional[Tuple[str, np.ndarray, np.ndarray]]:
    """(x, a, b) when node `n` computes a[c] * x + b[c] for every channel c (axis 1) of its one activation input x,
    with a and b from constants (Add, Sub, Mul, Div by a per-channel constant; an inference BatchNormalization);
    else None. The output must have x's channels and size (no broadcasting of x)."""
    out = g.shapes.get(n.outputs[0]) if n.outputs else None
    if n.op == "BatchNormalization":
        if n.attr("training_mode", 0) or len([o for o in n.outputs if o]) > 1 or len(n.inputs) < 5:
            return None
        if g.is_const(n.inputs[0]) or not all(g.is_const(t) for t in n.inputs[1:5]):
            return None
        gamma, beta, mean, var = (np.asarray(g.initializers[t], dtype=np.float64).ravel() for t in n.inputs[1:5])
        a = gamma / np.sqrt(var + float(n.attr("epsilon", 1e-5)))
        x, b = n.inputs[0], beta - mean * a
        xs = g.shapes.get(x)
        if not xs or len(xs) < 2 or any(len(v) != xs[1] for v in (a, b)):
            return None
        return x, a, b
    if n.op not in AFFINE_OPS or len(n.inputs) != 2 or not out:
        return None
    const = [g.is_const(t) for t in n.inputs]
    if const.count(True) != 1:
        return None
    k = const.index(True)
    x = n.inputs[1 - k]
    xs = g.shapes.get(x)
    if not xs or len(xs) < 2 or xs[1] != out[1] or int(np.prod(xs)) != int(np.prod(out)):
        return None
    v = _channel_vector(g.initializers[n.inputs[k]], out)
    if v is None:
        return None
    one, zero = np.ones_like(v), np.zeros_like(v)
    if n.op == "Add":
        return x, one, v
    if n.op == "Sub":
        return (x, one, -v) if k == 1 else (x, -one, v)
    if n.op == "Mul":
        return x, v, zero
    if k == 1 and np.all(v != 0):                                   # Div: x / c
        return x, 1.0 / v, zero
    return None


def _conv_weights(g: Graph, conv: Node) -> Tuple[np.ndarray, np.ndarray]:
    w = np.asarray(g.initializers[conv.inputs[1]], dtype=np.float64)
    b = (np.asarray(g.initializers[conv.inputs[2]], dtype=np.float64).reshape(-1)
         if len(conv.inputs) > 2 and conv.inputs[2] else np.zeros(w.shape[0]))
    return w, b


def _set_conv_weights(g: Graph, conv: Node, w: np.ndarray, b: np.ndarray, tag: str) -> None:
    w_name, b_name = _new_name(g, f"{conv.name}__w_{tag}"), _new_name(g, f"{conv.name}__b_{tag}")
    g.initializers[w_name], g.initializers[b_name] = w, b
    conv.inputs = [conv.inputs[0], w_name, b_name]


def _plain_conv(g: Graph, n: Node) -> bool:
    """A Conv with constant weights (and bias), group 1: one whose weights a fold may change."""
    return (n.op == "Conv" and int(n.attr("group", 1)) == 1 and g.is_const(n.inputs[1])
            and (len(n.inputs) < 3 or not n.inputs[2] or g.is_const(n.inputs[2])))


class Lift1D(Pass):
    """A 1-D model (maps [1, C, W]: Conv1d, MaxPool1d, ...) becomes a 2-D one on maps [1, C, 1, W] (the same
    bytes): kernels [k] -> [1, k], strides, dilations, pads [a, b] -> [0, a, 0, b], Conv weights [O, I, k] ->
    [O, I, 1, k], constants of elementwise ops get the new axis. Only when every node that reads or writes a
    [1, C, W] tensor is one of LIFTED (a reshape only as a reader whose result does not depend on the rank)."""
    name = "lift_1d"
    LIFTED = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Relu", "Clip", "LeakyRelu", "Add", "Sub",
              "Mul", "Div", "BatchNormalization", "Identity", "Dropout")
    SPATIAL = ("Conv", "MaxPool", "AveragePool")

    def apply(self, g):
        lifted = {t for t, s in g.shapes.items() if len(s) == 3 and s[0] == 1 and not g.is_const(t)}
        touching = [n for n in g.nodes if lifted & set(n.inputs + n.outputs)]
        if not lifted or not all(self._liftable(g, n, lifted) for n in touching):
            return False
        for n in touching:
            if n.op in self.SPATIAL:
                self._lift_attrs(g, n)
            elif n.op in ("Add", "Sub", "Mul", "Div"):
                for k, t in enumerate(n.inputs):
                    if g.is_const(t):
                        c = np.asarray(g.initializers[t])
                        c = c.reshape((1,) * (3 - c.ndim) + c.shape) if c.ndim <= 3 else c
                        name = _new_name(g, f"{t}__4d")
                        g.initializers[name] = c[:, :, None, :] if c.ndim == 3 else c
                        n.inputs[k] = name
        for t in lifted:
            _, c, w = g.shapes[t]
            g.shapes[t] = (1, c, 1, w)
        return True

    def _liftable(self, g, n, lifted) -> bool:
        if n.op in self.LIFTED:
            return not (n.op in self.SPATIAL and len(n.attr("kernel_shape", [0])) != 1 and n.op != "Conv")
        if n.outputs and n.outputs[0] in lifted:
            return False                      # a reshape to [1, C, W]: ONNX would give it back in 3-D
        if n.op == "Flatten":
            return int(n.attr("axis", 1)) in (0, 1)
        if n.op == "Reshape":
            return len(n.inputs) > 1 and g.is_const(n.inputs[1]) and 0 not in np.ravel(g.initializers[n.inputs[1]])
        return n.op in ("Softmax", "LogSoftmax") and n.outputs[0] in g.outputs

    @staticmethod
    def _lift_attrs(g, n) -> None:
        a = n.attrs
        if n.op == "Conv":
            w = np.asarray(g.initializers[n.inputs[1]]) if g.is_const(n.inputs[1]) else None
            if w is not None and w.ndim == 3:
                name = _new_name(g, f"{n.inputs[1]}__4d")
                g.initializers[name] = w[:, :, None, :]
                n.inputs[1] = name
        for key in ("kernel_shape", "strides", "dilations"):
            if key in a and len(a[key]) == 1:
                a[key] = [1, int(a[key][0])]
        if "pads" in a and len(a["pads"]) == 2:
            a["pads"] = [0, int(a["pads"][0]), 0, int(a["pads"][1])]


def _dropout_training(g: Graph, n: Node) -> bool:
    """A Dropout in training mode (the training_mode input true or not constant; opset < 12: never): random."""
    if len(n.inputs) < 3 or not n.inputs[2]:
        return False
    return not g.is_const(n.inputs[2]) or bool(np.asarray(g.initializers[n.inputs[2]]).reshape(-1)[0])


class RemoveIdentity(Pass):
    """Identity and Dropout (inference: the identity) disappear."""
    name = "remove_identity"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in ("Identity", "Dropout")]:
            if n.op == "Dropout" and len(n.outputs) > 1 and n.outputs[1] and \
                    (g.consumers(n.outputs[1]) or n.outputs[1] in g.outputs):
                continue  # mask output in use: leave it for check_supported to reject
            if n.op == "Dropout" and _dropout_training(g, n):
                continue  # random: not the identity (check_supported rejects it)
            changed |= _bypass(g, n)
        return changed


class FoldAffineIntoLayer(Pass):
    """A per-channel affine a * x + b (affine_of) right after a Conv (whose output is used only there) becomes part
    of that Conv: W'[o] = a[o] * W[o], bias'[o] = a[o] * bias[o] + b[o], in float64, so zeros stay zeros. A Gemm becomes
    a Conv in gemm_to_conv, so this folds after a Gemm or MatMul too (in the next round). No fold after a fused
    activation (the affine would come after the ReLU)."""
    name = "fold_affine"
    OPS = ("Add", "Sub", "Mul", "Div", "BatchNormalization")

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in self.OPS]:
            found = affine_of(g, n)
            if found is None:
                continue
            x, a, b = found
            conv = g.producer(x)
            if conv is None or not _plain_conv(g, conv) or not _single_use(g, x) or len(conv.outputs) != 1:
                continue
            if conv.attr("sps_relu") or conv.attr("sps_clip_max") or conv.attr("sps_out_view"):
                continue
            w, bias = _conv_weights(g, conv)
            if w.shape[0] != len(a):
                continue
            _set_conv_weights(g, conv, w * a.reshape(-1, *([1] * (w.ndim - 1))), a * bias + b, self.name)
            _absorb(g, conv, n)
            changed = True
        return changed


class FoldBatchNorm(FoldAffineIntoLayer):
    """Conv -> BatchNormalization becomes one Conv with scaled weights and shifted bias (float64):
    W' = W * a, b' = (b - mean) * a + beta, a = gamma / sqrt(var + eps)."""
    name = "fold_batchnorm"
    OPS = ("BatchNormalization",)


class FoldAffineIntoNextConv(Pass):
    """A per-channel affine a * x + b (affine_of) whose output only Convs read becomes part of those Convs: the
    scale goes into the weights, W'[o, i] = W[o, i] * a[i]; the shift becomes the Conv's input shift
    `sps_input_shift` s[i] = b[i] / a[i] (the Conv computes Conv(x + s)), which lower.fold_input_shifts adds to the
    bias as sum W[o, i] * s[i] once the weights are final (PPS projection zeroes taps after this pass).
    Exact only where every tap reads the map, not the zero padding (the padding is applied after the affine: a
    padded Conv of (x - mean) / std sees 0 where the folded one would see -mean / std), so: when b = 0 (a scale
    only), or when no Conv pads. Input normalization (Sub mean, Div std on the graph input) before a padded first
    Conv folds its Div; its Sub then runs as a 1x1 Conv (affine_to_conv)."""
    name = "fold_affine_into_next_conv"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in AFFINE_OPS]:
            found = affine_of(g, n)
            out = n.outputs[0]
            users = g.consumers(out)
            if found is None or out in g.outputs or not users:
                continue
            x, a, b = found
            xs = g.shapes.get(x)
            if not xs or len(xs) != 4:
                continue
            if any(not _plain_conv(g, u) or u.inputs[0] != out or out in u.inputs[1:]
                   or u.attr("sps_in_channels") or g.initializers[u.inputs[1]].shape[1] % len(a) for u in users):
                continue
            shifts = [b + np.asarray(u.attr("sps_input_shift", np.zeros(len(a))), dtype=np.float64) for u in users]
            if any(np.any(s != 0) for s in shifts):
                if np.any(a == 0) or any(any(conv_pads(u, xs[2:], g.initializers[u.inputs[1]].shape[2:],
                                                       [int(v) for v in u.attr("strides", [1, 1])]))
                                         for u in users):
                    continue
            for u, shift in zip(users, shifts):
                w, bias = _conv_weights(g, u)
                per = w.shape[1] // len(a)             # fc_as_pointwise: weights [O, C*H*W, 1, 1]
                _set_conv_weights(g, u, w * np.repeat(a, per).reshape(1, -1, 1, 1), bias, "pre")
                u.attrs.pop("sps_input_shift", None)
                if np.any(shift != 0):
                    u.attrs["sps_input_shift"] = [float(v) for v in shift / a]
                u.inputs[0] = x
                u.sources.append(n.name)
            g.nodes.remove(n)
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
                n_out = g.initializers[mm.inputs[1]].shape[1]
                if len(other) == 1 and g.is_const(other[0]) and g.initializers[other[0]].size in (1, n_out) \
                        and g.shapes.get(add.outputs[0]) == g.shapes.get(mm.outputs[0]):
                    inputs.append(other[0])
                    g.nodes.remove(add)
                    g.rename(mm.outputs[0], add.outputs[0])
                    mm.sources.append(add.name)
            mm.op, mm.inputs, mm.attrs = "Gemm", inputs, {"transB": 0}
            changed = True
        return changed


class TransposeIntoFc(Pass):
    """Transpose of a map [1, C, H, W] (batch axis kept first), then a flatten, then a Gemm with constant B: the
    Gemm reads the map in another order, so permuting B's rows is the same product on the untransposed map (what
    tf2onnx writes before a Keras Dense layer: NCHW -> NHWC -> Flatten -> MatMul)."""
    name = "transpose_into_fc"

    def apply(self, g):
        changed = False
        for gemm in [n for n in g.nodes if n.op == "Gemm"]:
            flat = gemm.inputs[0]
            fl = g.producer(flat)
            if fl is None or fl.op not in ("Flatten", "Reshape") or not _single_use(g, flat):
                continue
            tp = g.producer(fl.inputs[0])
            if tp is None or tp.op != "Transpose" or not _single_use(g, tp.outputs[0]):
                continue
            src, perm = tp.inputs[0], tp.attr("perm")
            s = g.shapes.get(src)
            if not s or len(s) != 4 or s[0] != 1 or perm is None or int(perm[0]) != 0:
                continue
            size = int(np.prod(s))
            if g.shapes.get(flat) != (1, size) or gemm.attr("transA", 0) or not g.is_const(gemm.inputs[1]):
                continue
            b_mat = np.asarray(g.initializers[gemm.inputs[1]], dtype=np.float64)
            trans_b = int(gemm.attr("transB", 0))
            rows = b_mat.T if trans_b else b_mat                          # [K, N]: row j multiplies flat[j]
            if rows.shape[0] != size:
                continue
            order = np.arange(size).reshape(s[1:]).transpose([int(p) - 1 for p in perm[1:]]).ravel()
            permuted = np.empty_like(rows)
            permuted[order] = rows               # flat(T(x))[j] = x[order[j]]
            name = _new_name(g, f"{gemm.name}__B_untransposed")
            g.initializers[name] = permuted.T if trans_b else permuted
            gemm.inputs[1] = name
            fl.inputs[0] = src
            g.nodes.remove(tp)
            gemm.sources.insert(0, tp.name)
            changed = True
        return changed


def clip_bounds(g: Graph, n: Node) -> Optional[Tuple[float, float]]:
    """(min, max) of a Clip node (inputs from opset 11, attributes before), None if an input is not constant."""
    lo, hi = float(n.attr("min", -np.inf)), float(n.attr("max", np.inf))
    for k, default in ((1, lo), (2, hi)):
        if len(n.inputs) > k and n.inputs[k]:
            if not g.is_const(n.inputs[k]):
                return None
            value = float(np.asarray(g.initializers[n.inputs[k]]).reshape(-1)[0])
            lo, hi = (value, hi) if k == 1 else (lo, value)
    return lo, hi


def _activation(g: Graph, n: Node) -> Optional[float]:
    """For a Relu or a Clip(0, max) the requantizer expresses exactly: 0.0 for a ReLU, max for a Clip(0, max)
    (max finite > 0: the output scale becomes max / 127, so int8 saturation at 127 is the clip); else None."""
    if n.op == "Relu":
        return 0.0
    if n.op != "Clip":
        return None
    bounds = clip_bounds(g, n)
    if bounds is None or bounds[0] != 0 or not bounds[1] > 0:
        return None
    return 0.0 if np.isinf(bounds[1]) else bounds[1]


class FuseRelu(Pass):
    """Relu (or Clip(0, max)) after a Conv, Gemm, Add or pool becomes that layer's ReLU flag (`sps_relu`; for a
    Clip also `sps_clip_max`, which fixes the output scale at max / 127: not after a MaxPool, whose output keeps
    its input's scale)."""
    name = "fuse_relu"
    PRODUCERS = ("Conv", "Gemm", "Add", "MaxPool", "AveragePool", "GlobalAveragePool")

    def apply(self, g):
        changed = False
        for act in [n for n in g.nodes if n.op in ("Relu", "Clip")]:
            clip = _activation(g, act)
            prod = g.producer(act.inputs[0])
            if clip is None or prod is None or prod.op not in self.PRODUCERS or prod.attr("sps_relu"):
                continue
            if not _single_use(g, act.inputs[0]) or len(prod.outputs) != 1 or (clip and prod.op == "MaxPool"):
                continue
            _absorb(g, prod, act)
            prod.attrs["sps_relu"] = 1
            if clip:
                prod.attrs["sps_clip_max"] = clip
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


def _gemm_input(g: Graph, n: Node) -> Tuple[Optional[str], Optional[Tuple[int, ...]], str]:
    """(map the Gemm reads, its [1, C, H, W] shape, why not): a flattened map, a map itself, or a flat graph input
    [1, K] (read as [1, K, 1, 1]: the same bytes)."""
    x = n.inputs[0]
    shape = g.shapes.get(x, ())
    if len(shape) == 2:
        src = _flat_source(g, x)
        if src is not None:
            return src, g.shapes[src], ""
        if x in g.inputs and shape[0] == 1:
            return x, (1, int(shape[1]), 1, 1), ""
        return None, None, (f"reads {x!r} of shape {list(shape)}, which is neither a flattened feature map "
                            f"[1, C, H, W] nor the graph input")
    if len(shape) != 4 or shape[0] != 1:
        return None, None, f"input {x!r} has shape {list(shape)}; expected a batch-1 feature map or a flat vector"
    return x, tuple(shape), ""


def gemm_problem(g: Graph, n: Node) -> str:
    """Why gemm_to_conv cannot take Gemm `n` ("" if it can)."""
    x, shape, why = _gemm_input(g, n)
    if x is None:
        return why
    if n.attr("transA", 0):
        return "transA=1 reads the input transposed, across the batch; only transA=0 is a layer"
    if not all(g.is_const(t) for t in n.inputs[1:] if t):
        return "its weights B or bias C are not constant; only a Gemm with constant B and C is a layer"
    b_mat = g.initializers[n.inputs[1]]
    if b_mat.ndim != 2:
        return f"B has shape {list(b_mat.shape)}; expected a matrix"
    out_n = b_mat.shape[0] if n.attr("transB", 0) else b_mat.shape[1]
    if b_mat.size != out_n * int(np.prod(shape[1:])):
        return (f"weights {list(b_mat.shape)} do not match its input map {list(shape)} "
                f"({int(np.prod(shape[1:]))} values)")
    if len(n.inputs) > 2 and n.inputs[2] and g.initializers[n.inputs[2]].size not in (1, out_n):
        return (f"bias C of shape {list(g.initializers[n.inputs[2]].shape)}; expected {out_n} values (one per "
                f"output; a bias per sample of a batch is not a layer)")
    return ""


class GemmToConv(Pass):
    """Gemm on a flattened map [1, C*H*W] becomes a Conv whose kernel is the whole map (output 1x1); on a flat graph
    input [1, K] a 1x1 Conv on [1, K, 1, 1].

    The flatten is C-major, so W[N, C*H*W] reshaped to [N, C, H, W] is the same product on the same bytes. A Gemm
    this cannot take stays (check_supported says why: gemm_problem).
    """
    name = "gemm_to_conv"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Gemm"]:
            if gemm_problem(g, n):
                continue
            x, shape, _ = _gemm_input(g, n)
            if x != n.inputs[0]:
                n.sources.insert(0, g.producer(n.inputs[0]).name)     # the flatten folded into this layer
            else:
                g.shapes[x] = shape                                   # a flat graph input read as a map
            b_mat = g.initializers[n.inputs[1]]
            w = (b_mat if n.attr("transB", 0) else b_mat.T) * float(n.attr("alpha", 1.0))
            out_n = w.shape[0]
            _, c, h, wd = shape
            bias = np.zeros(out_n)
            if len(n.inputs) > 2 and n.inputs[2]:
                c_arr = g.initializers[n.inputs[2]].astype(np.float64)
                bias = np.broadcast_to(c_arr.ravel(), (out_n,)) * float(n.attr("beta", 1.0))
            w_name, b_name = _new_name(g, n.name + "__w_conv"), _new_name(g, n.name + "__b_conv")
            g.initializers[w_name] = w.reshape(out_n, c, h, wd).astype(np.float64)
            g.initializers[b_name] = np.array(bias, dtype=np.float64)
            kept = {k: v for k, v in n.attrs.items() if k in ("sps_relu", "sps_clip_max")}
            n.op, n.inputs = "Conv", [x, w_name, b_name]
            n.attrs = {"kernel_shape": [h, wd], "strides": [1, 1], "pads": [0, 0, 0, 0], "sps_fc": 1, **kept}
            g.shapes[n.outputs[0]] = (1, out_n, 1, 1)
            changed = True
        return changed


class UndilateConv(Pass):
    """A dilated Conv (dilation d > 1, group 1, constant weights) becomes the same Conv with its kernel spread out:
    taps d apart in a (k - 1) * d + 1 kernel of zeros. Exact; it costs the zeros' multiply-adds (a 3x3 kernel of
    dilation 2 is a dense 5x5: 25 instead of 9), and such a kernel is never PPS (not 3x3)."""
    name = "undilate_conv"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Conv" and any(int(d) != 1 for d in n.attr("dilations", [1, 1]))]:
            if not _plain_conv(g, n) or g.initializers[n.inputs[1]].ndim != 4:
                continue
            dh, dw = (int(d) for d in n.attr("dilations"))
            w = np.asarray(g.initializers[n.inputs[1]], dtype=np.float64)
            o, i, kh, kw = w.shape
            spread = np.zeros((o, i, (kh - 1) * dh + 1, (kw - 1) * dw + 1))
            spread[:, :, ::dh, ::dw] = w
            name = _new_name(g, f"{n.name}__w_undilated")
            g.initializers[name] = spread
            n.inputs = [n.inputs[0], name] + n.inputs[2:]
            n.attrs["dilations"] = [1, 1]
            n.attrs["kernel_shape"] = list(spread.shape[2:])
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
            w_name = _new_name(g, n.name + "__w_flat")
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
            changed |= _bypass(g, n)
        return changed


def host_step_ops() -> Tuple[str, ...]:
    """The host steps a packed model may hold: those the runtime applies (runtime.preprocess) and the model file
    accepts (model_file); the compiler emits no other."""
    from .. import model_file
    from ..runtime import preprocess
    accepted = getattr(model_file, "_HOST_OPS", ("softmax",))
    return tuple(op for op in getattr(preprocess, "HOST_STEP_OPS", ("softmax",)) if op in accepted)


class StripSoftmax(Pass):
    """A Softmax (or LogSoftmax) that produces a graph output runs on the host after dequantization (a host step
    {"op": "softmax" / "log_softmax", "tensor", "axis"}), if the runtime has that step (host_step_ops)."""
    name = "strip_softmax"
    STEPS = {"Softmax": "softmax", "LogSoftmax": "log_softmax"}

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in self.STEPS]:
            if self.STEPS[n.op] not in host_step_ops():
                continue
            if n.outputs[0] not in g.outputs or g.consumers(n.outputs[0]):
                continue
            src = n.inputs[0]
            if src in g.inputs or src in g.outputs or len(g.consumers(src)) != 1:
                continue
            shape = g.shapes.get(src)
            axis = int(n.attr("axis", -1 if g.opset >= 13 else 1))
            if g.opset < 13 and shape and int(np.prod(shape[axis % len(shape) + 1:])) != 1:
                continue   # before opset 13 the softmax runs over all axes from `axis` on: not one axis
            if shape and axis % len(shape) == 0:
                continue   # over the batch axis: the samples of a batch would depend on each other
            g.nodes.remove(n)
            g.rename(src, n.outputs[0])   # the graph output keeps its name, now before the softmax
            if shape is not None:
                g.shapes[n.outputs[0]] = shape
            g.host_steps.append({"op": self.STEPS[n.op], "tensor": n.outputs[0], "axis": axis, "source": n.name})
            changed = True
        return changed


class TransposeInput(Pass):
    """An NHWC graph input [1, H, W, C] transposed to NCHW (tf2onnx's leading Transpose, perm [0, 3, 1, 2]) runs as
    a layer: the core reads the input as a map of H channels, W rows and C columns, and a Conv with a 1 x C kernel
    and one-hot weights (output channel c * H + h takes input channel h, column c) writes map [C * H, W, 1], whose
    bytes are those of [C, H, W]. Exact (weights 1, the output keeps the input's range), dense: C*H * W * H*C
    multiply-adds (a 3x32x32 input: 0.3 M)."""
    name = "transpose_input"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op == "Transpose"]:
            x = n.inputs[0]
            s = g.shapes.get(x)
            perm = [int(p) for p in n.attr("perm", [])]
            if x not in g.inputs or not s or len(s) != 4 or s[0] != 1 or perm != [0, 3, 1, 2]:
                continue
            _, h, w, c = s
            weights = np.zeros((c * h, h, 1, c))
            for ch in range(c):
                weights[ch * h + np.arange(h), np.arange(h), 0, ch] = 1.0
            w_name, b_name = _new_name(g, n.name + "__w_onehot"), _new_name(g, n.name + "__b_zero")
            g.initializers[w_name], g.initializers[b_name] = weights, np.zeros(c * h)
            n.op, n.inputs = "Conv", [x, w_name, b_name]
            n.attrs = {"kernel_shape": [1, c], "strides": [1, 1], "pads": [0, 0, 0, 0],
                       "sps_out_view": [c * h, w, 1], "sps_fc": 1, "sps_helper": 1}
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


# -- last resort: a layer of its own -----------------------------------------------------------------------------

class AffineToConv(Pass):
    """A per-channel affine a * x + b (affine_of) that no fold took (a BatchNormalization after a pool, input
    normalization before a padded Conv, ...) becomes a 1x1 Conv with weights diag(a) and bias b: exact in float,
    one more int8 rounding, C * C multiply-adds per pixel."""
    name = "affine_to_conv"

    def apply(self, g):
        changed = False
        for n in [n for n in g.nodes if n.op in AFFINE_OPS]:
            found = affine_of(g, n)
            if found is None:
                continue
            x, a, b = found
            shape = _map_shape(g, x)
            if shape is None:
                continue
            w_name, b_name = _new_name(g, n.name + "__w_diag"), _new_name(g, n.name + "__b_diag")
            g.initializers[w_name] = np.diag(a).reshape(len(a), len(a), 1, 1)
            g.initializers[b_name] = np.asarray(b, dtype=np.float64)
            n.op, n.inputs, n.outputs = "Conv", [x, w_name, b_name], n.outputs[:1]
            n.attrs = {"kernel_shape": [1, 1], "sps_helper": 1}
            g.shapes[x] = g.shapes[n.outputs[0]] = shape
            changed = True
        return changed


class ActivationAsLayer(Pass):
    """A Relu or Clip(0, max) that fuse_relu could not fuse gets a layer to fuse into: a Relu of a tensor that is
    already ReLU'd disappears; otherwise a 1x1 MaxPool (for a Relu: exact, no requantization) or a 1x1 identity
    Conv (for a Clip, which needs a requantizing layer) is put before it, and fuse_relu fuses it there."""
    name = "activation_as_layer"

    def apply(self, g):
        changed = False
        for act in [n for n in g.nodes if n.op in ("Relu", "Clip")]:
            clip = _activation(g, act)
            x = act.inputs[0]
            prod = g.producer(x)
            if clip is None:
                continue
            if act.op == "Relu" and prod is not None and prod.attr("sps_relu") and not prod.attr("sps_clip_max"):
                changed |= _bypass(g, act)
                continue
            shape = _map_shape(g, x)
            if shape is None:
                continue
            t = _new_name(g, f"{x}__{act.name}_in")
            if clip:
                c = shape[1]
                w_name, b_name = _new_name(g, act.name + "__w_id"), _new_name(g, act.name + "__b_id")
                g.initializers[w_name] = np.eye(c).reshape(c, c, 1, 1)
                g.initializers[b_name] = np.zeros(c)
                layer = Node("Conv", f"{act.name}/layer", [x, w_name, b_name], [t],
                             {"kernel_shape": [1, 1], "sps_helper": 1}, [act.name])
            else:
                layer = Node("MaxPool", f"{act.name}/layer", [x], [t], {"kernel_shape": [1, 1], "sps_helper": 1},
                             [act.name])
            g.shapes[x] = g.shapes[t] = shape
            g.nodes.insert(g.nodes.index(act), layer)
            act.inputs[0] = t
            changed = True
        return changed


# Each pass once; run_pipeline repeats the list until a whole round changes nothing (a rewrite can enable another:
# a Relu after a Flatten fuses once the flatten is an alias, a dead Shape chain goes once its Reshape is gone).
PIPELINE: List[Pass] = [
    Lift1D(),
    RemoveIdentity(),
    DeadCodeElimination(),
    FoldBatchNorm(),
    FoldAffineIntoLayer(),
    ReduceMeanToGlobalPool(),
    MatMulAddToGemm(),
    TransposeIntoFc(),
    FuseRelu(),
    GemmToConv(),
    FoldAffineIntoNextConv(),
    UndilateConv(),
    FcAsPointwise(),
    FlattenToAlias(),
    StripSoftmax(),
    TransposeInput(),
]
# Run when PIPELINE has reached a fixpoint, then PIPELINE again: a node gets a layer of its own only if no fold
# took it.
LAST_RESORT: List[Pass] = [
    AffineToConv(),
    ActivationAsLayer(),
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
            attrs = {k: v for k, v in n.attrs.items() if k not in ("sps_relu", "sps_clip_max")}
            attrs["sps_in_channels"] = [c0, c1]
            if n.attr("sps_input_shift"):
                attrs["sps_input_shift"] = list(n.attr("sps_input_shift"))[c0:c1]
            inputs = [n.inputs[0], w_name] + ([bias] if j == 0 and bias else [])
            new.append(Node("Conv", f"{n.name}/part{j}", inputs, [t], attrs, list(n.sources)))
            partial.append(t)
        acc = partial[0]
        for j in range(1, parts):
            t = out if j == parts - 1 else f"{out}__sum{j}"
            g.shapes[t] = g.shapes[out]
            attrs = {k: v for k, v in n.attrs.items() if k in ("sps_relu", "sps_clip_max")} \
                if relu and j == parts - 1 else {}
            new.append(Node("Add", f"{n.name}/sum{j}", [acc, partial[j]], [t], attrs, list(n.sources)))
            acc = t
        g.nodes[at:at + 1] = new


def split_wide_reductions(g: Graph, hw) -> Graph:
    """SplitWideReduction for hardware `hw` (see there): the graph with every too-wide FC layer split."""
    return SplitWideReduction(hw).run(g)[0]


MAX_ROUNDS = 10     # rounds of the whole list before run_pipeline gives up; real models need 2 or 3


def run_pipeline(g: Graph, passes: List[Pass] = None, check: Optional[Callable[[Graph, str], None]] = None,
                 max_rounds: int = MAX_ROUNDS, last_resort: Optional[List[Pass]] = None,
                 guard: bool = True) -> Graph:
    """Run the passes in order, and the whole list again until no pass changes the graph (a fixpoint); then each
    last-resort pass (default: LAST_RESORT with the default PIPELINE, none with a list of one's own) until one
    changes the graph, and the rounds go on; at the end the guard `check_supported` (unless guard=False).
    `check(graph, pass_name)` runs after each pass that changed the graph. A pipeline still changing after
    `max_rounds` rounds is a compiler bug (a pass that undoes another or keeps rewriting its own output):
    RuntimeError naming the passes."""
    if last_resort is None:
        last_resort = LAST_RESORT if passes is None else []
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
            for p in last_resort:
                g, changed = p.run(g)
                if changed:
                    changed_by.append(p.name)
                    if check is not None:
                        check(g, p.name)
                    break
        if not changed_by:
            if guard:
                check_supported(g)
            return g
    raise RuntimeError(f"{g.source}: the graph passes reached no fixpoint in {max_rounds} rounds (round "
                       f"{max_rounds} still changed the graph in {', '.join(changed_by)}); this is a compiler bug, "
                       f"please report it with the model")


# -- the guard -------------------------------------------------------------------------------------------------

@dataclass
class Blocker:
    """A node left after the passes that is no hardware layer (or one the hardware cannot run as it is)."""
    node: Node
    reason: str       # why it does not run
    fix: str          # what would make it run: the rewrite that takes such a node when ..., or what to change


def _shape_text(g: Graph, t: str) -> str:
    if g.is_const(t):
        return f"{t} (constant {list(np.shape(g.initializers[t]))})"
    s = g.shapes.get(t)
    return f"{t} {list(s) if s is not None else '(shape unknown)'}"


def describe(g: Graph, n: Node) -> str:
    """The node as --explain prints it: op, name, attributes, inputs and outputs with their shapes."""
    def show(v):
        if isinstance(v, float):
            return f"{v:.7g}"                              # float32 attributes: 0.1, not 0.10000000149011612
        return f"[{', '.join(show(x) for x in v)}]" if isinstance(v, (list, tuple)) else str(v)
    attrs = ", ".join(f"{k}={show(v)}" for k, v in sorted(n.attrs.items()) if not k.startswith("sps_"))
    ins = ", ".join(_shape_text(g, t) for t in n.inputs if t)
    outs = ", ".join(_shape_text(g, t) for t in n.outputs if t)
    return f"{n.op} {n.name!r}" + (f" ({attrs})" if attrs else "") + f": {ins} -> {outs}"


def _unsupported(g: Graph, b: Blocker, more: int = 0) -> UnsupportedOpError:
    tail = (f"; {more} more node(s) block this model: `sps-pynq pack --explain {g.source}` lists them all"
            if more else "")
    return UnsupportedOpError(f"{g.source}: node {b.node.name!r} ({b.node.op}): {b.reason}; supported: "
                              f"{SUPPORTED_TEXT}{tail}")


def check_supported(g: Graph) -> None:
    """Every node left must be a hardware layer with attributes the hardware runs: UnsupportedOpError naming the
    first one that is not (and how many more there are)."""
    found = blockers(g)
    if found:
        raise _unsupported(g, found[0], len(found) - 1)


def blockers(g: Graph) -> List[Blocker]:
    """Every node of the graph (after the passes) that the hardware cannot run, with the reason and the fix."""
    out = []
    for n in g.nodes:
        problem = _problem(g, n)
        if problem is not None:
            out.append(Blocker(n, *problem))
    return out


NO_REWRITE = "no rewrite: the core runs Conv, MaxPool, AveragePool, Add and per-channel affines"


def _problem(g: Graph, n: Node) -> Optional[Tuple[str, str]]:
    """(reason, fix) if node n blocks the model, else None."""
    if n.attr("sps_domain"):
        return f"op of domain {n.attr('sps_domain')!r} is not supported", NO_REWRITE
    if n.op not in HW_OPS or (n.op == "Add" and _add_problem(g, n)):
        return _op_problem(g, n)
    for t in n.inputs[:1] + n.outputs[:1]:
        shape = g.shapes.get(t)
        if shape is None or len(shape) != 4:
            return (f"tensor {t!r} has shape {list(shape) if shape else 'unknown'}; the hardware works on 4-D "
                    f"batch-1 feature maps [1, C, H, W]", "no rewrite for 1-D or 3-D maps: export a 2-D model")
        if shape[0] != 1:
            return (f"tensor {t!r} has batch {shape[0]} in the graph; export with batch 1 or a dynamic batch "
                    f"(the runtime loops over a batch)", "export with batch 1")
    if n.op == "Conv":
        return _conv_problem(g, n)
    if n.op in ("MaxPool", "AveragePool"):
        return _pool_problem(g, n)
    return None


def _add_problem(g: Graph, n: Node) -> str:
    if len(n.inputs) != 2 or any(g.is_const(t) for t in n.inputs):
        return "an Add of a constant that is not one value per channel"
    sa, sb = g.shapes.get(n.inputs[0]), g.shapes.get(n.inputs[1])
    if sa != sb:
        return (f"inputs have shapes {list(sa or ())} and {list(sb or ())}; broadcasting is not supported, both "
                f"must be the same [1, C, H, W]")
    return ""


def _op_problem(g: Graph, n: Node) -> Tuple[str, str]:
    op = n.op
    if op == "BatchNormalization" and n.attr("training_mode", 0):
        return "training_mode=1 is not supported", "export the model in eval mode"
    if op == "BatchNormalization":
        return (f"a BatchNormalization on {list(g.shapes.get(n.inputs[0], ()))} with non-constant parameters or "
                f"another shape: not a per-channel affine of a map",
                "fold_batchnorm / affine_to_conv take an inference BatchNormalization of a [1, C, H, W] map")
    if op in AFFINE_OPS:
        const = [t for t in n.inputs if g.is_const(t)]
        if op == "Add" and not const:
            return _add_problem(g, n), NO_REWRITE
        if op != "BatchNormalization" and not const:
            return (f"{op} of two activations {[list(g.shapes.get(t, ())) for t in n.inputs]}: the core has no "
                    f"elementwise {op.lower()} of two maps", NO_REWRITE)
        return (f"{op} with constant(s) {[list(np.shape(g.initializers[t])) for t in const]} on "
                f"{[list(g.shapes.get(t, ())) for t in n.inputs if not g.is_const(t)]} is not one scale and one "
                f"shift per channel (axis 1) of a map",
                "fold_affine / fold_affine_into_next_conv / affine_to_conv take a per-channel constant "
                "(shape [C], [C, 1, 1] or [1, C, 1, 1]) on a [1, C, H, W] map or a flat [1, C] vector")
    if op == "Gemm":
        return gemm_problem(g, n) or "not a layer", ("gemm_to_conv takes a Gemm with constant B, C and transA=0 on a "
                                                     "flattened map or a flat graph input [1, K]")
    if op == "MatMul":
        shapes = [list(np.shape(g.initializers[t])) if g.is_const(t) else list(g.shapes.get(t, ()))
                  for t in n.inputs]
        return (f"MatMul of {shapes[0]} by {shapes[1]}: only a flat [1, K] vector (a flattened map) times a "
                f"constant matrix [K, N] is a layer", "matmul_add_to_gemm takes x [1, K] @ constant B [K, N]")
    if op == "Relu":
        return (f"a Relu on {list(g.shapes.get(n.inputs[0], ()))}: not a [1, C, H, W] map or flat vector",
                "activation_as_layer gives a Relu on a map a 1x1 MaxPool")
    if op == "Clip":
        bounds = clip_bounds(g, n)
        if bounds is None:
            return "Clip with bounds that are not constant", "make min and max constants"
        return (f"Clip(min={bounds[0]:g}, max={bounds[1]:g}) is not exactly expressible: the requantizer's only "
                f"nonlinearities are ReLU (max(y, 0)) and saturation to the int8 range, so only Clip(0, max) with "
                f"0 < max (the output scale max / 127) is exact",
                "fuse_relu takes Clip(0, max) (ReLU6 is Clip(0, 6))")
    if op in ("LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu"):
        alpha = f"(alpha={n.attr('alpha'):g})" if n.attr("alpha") is not None else ""
        return (f"{op}{alpha} is not exactly expressible: the requantizer's only nonlinearities are ReLU "
                f"(max(y, 0)) and saturation to the int8 range", "use Relu (or Clip(0, max)) in the model")
    if op in ("Softmax", "LogSoftmax"):
        step = StripSoftmax.STEPS[op]
        if step not in host_step_ops():
            return (f"a {op} runs on the host as the host step {step!r}, which this sps-pynq's model file cannot "
                    f"hold (host steps: {', '.join(host_step_ops())})", "a runtime that has the host step")
        shape = g.shapes.get(n.inputs[0], ())
        axis = int(n.attr("axis", -1 if g.opset >= 13 else 1))
        if n.outputs[0] not in g.outputs or g.consumers(n.outputs[0]):
            why = "is only supported as the last op, on one axis of a graph output (it runs on the host)"
        elif n.inputs[0] in g.inputs:
            why = "of the graph input itself: no layer runs before it"
        elif shape and axis % len(shape) == 0:
            why = f"over axis {axis}, the batch axis of {list(shape)}: it would make the samples depend on each other"
        else:
            why = "of a tensor another node reads as well (it runs on the host, after the last layer)"
        return f"a {op} {why}", "strip_softmax takes a Softmax over one non-batch axis that produces a graph output"
    if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
        return (f"reshape of {list(g.shapes.get(n.inputs[0], ()))} to {list(g.shapes.get(n.outputs[0], ()))} is not "
                f"a flatten before a Gemm/output", "flatten_to_alias takes a reshape of [1, C, H, W] to "
                                                   "[1, C*H*W] (the same bytes)")
    if op == "Transpose":
        return (f"Transpose(perm={n.attr('perm')}) of {list(g.shapes.get(n.inputs[0], ()))}: the core moves no "
                f"data between axes", "transpose_input takes perm [0, 3, 1, 2] of the graph input (NHWC); "
                                      "transpose_into_fc a Transpose before a Flatten and a Gemm")
    if op == "Dropout" and _dropout_training(g, n):
        return "a Dropout in training mode drops random values", "export the model in eval mode"
    if op == "Dropout":
        return "a Dropout whose mask output is used", "do not use the mask"
    return "op is not supported", NO_REWRITE


def _conv_problem(g: Graph, n: Node) -> Optional[Tuple[str, str]]:
    if int(n.attr("group", 1)) != 1:
        return (f"grouped convolution (group={n.attr('group')}) is not supported; only group=1 (no "
                f"depthwise/grouped conv)", NO_REWRITE)
    if any(int(d) != 1 for d in n.attr("dilations", [1, 1])):
        return (f"dilations={list(n.attr('dilations'))} is not supported; only dilation 1",
                "undilate_conv takes a dilated Conv with constant weights and group 1")
    if not g.is_const(n.inputs[1]) or (len(n.inputs) > 2 and n.inputs[2] and not g.is_const(n.inputs[2])):
        return "weights and bias must be constant initializers", "make the weights constants (initializers)"
    if g.initializers[n.inputs[1]].ndim != 4:
        return f"weights {list(g.initializers[n.inputs[1]].shape)} are not 2-D conv weights", NO_REWRITE
    return None


def _pool_problem(g: Graph, n: Node) -> Optional[Tuple[str, str]]:
    if any(int(d) != 1 for d in n.attr("dilations", [1, 1])):
        return f"dilations={list(n.attr('dilations'))} is not supported; only dilation 1", NO_REWRITE
    if len([o for o in n.outputs if o]) > 1:
        return "the indices output of MaxPool is not supported", "do not use the indices"
    in_hw, out_hw = g.shapes[n.inputs[0]][2:], g.shapes[n.outputs[0]][2:]
    kernel = [int(k) for k in n.attr("kernel_shape")]
    strides = [int(s) for s in n.attr("strides", [1, 1])]
    pads = pool_pads(n, in_hw, out_hw, kernel, strides)
    if n.op == "AveragePool" and max(pads[0], pads[2]) < kernel[0] and max(pads[1], pads[3]) < kernel[1]:
        # (padding as large as the window is fit.check_fits's error)
        div = avgpool_divisors(n, g.opset, in_hw, out_hw, kernel, strides, pads)
        if uniform_divisor(div) is None:
            values = sorted({float(v) for v in np.ravel(div)})
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
            return (f"ONNX divides its windows by different numbers ({shown}: count_include_pad="
                    f"{n.attr('count_include_pad', 0)}, pads {list(pads)} with ceil_mode={n.attr('ceil_mode', 0)} "
                    f"and auto_pad={n.attr('auto_pad', 'NOTSET')}); the core divides every window of a layer by "
                    f"one number", "count_include_pad=1 or no padding (then every window holds kh * kw positions)")
    return None
