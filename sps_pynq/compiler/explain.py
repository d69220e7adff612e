"""`sps-pynq pack --explain MODEL`: why a model does or does not pack, every blocking node at once.

The compile stops at its first error; `explain` goes on: it runs the import and the passes without the final
guard, then lists every node that is no hardware layer (passes.blockers: op, attributes, shapes, the reason, and
the rewrite that takes such a node or what to change in the model), then, if there is none, lowers the graph and
checks every layer against the hardware (fit.check_fits' rules, each layer on its own). For a model that packs it
lists the layers and the ONNX nodes each one does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import SpsError
from . import fit, frontend, ir, lower, passes
from .options import CompileOptions


@dataclass
class Explanation:
    source: str
    blocking: List[str] = field(default_factory=list)      # one paragraph per blocking node or layer
    layers: List[str] = field(default_factory=list)        # for a model that packs: layer <- ONNX nodes
    host_steps: List[str] = field(default_factory=list)

    @property
    def packs(self) -> bool:
        return not self.blocking

    def text(self) -> str:
        if self.blocking:
            lines = [f"{self.source}: does not pack; {len(self.blocking)} blocking "
                     f"{'node' if len(self.blocking) == 1 else 'nodes'}:"]
            lines += [f"{k + 1:3d}. {b}" for k, b in enumerate(self.blocking)]
            return "\n".join(lines)
        lines = [f"{self.source}: packs into {len(self.layers)} layers:"]
        lines += [f"  {line}" for line in self.layers]
        lines += [f"  host: {step}" for step in self.host_steps]
        return "\n".join(lines)


def explain(model, options: Optional[CompileOptions] = None, **kwargs) -> Explanation:
    """The Explanation of `model` (anything compile_model takes) under `options`."""
    opts = CompileOptions.of(options, **kwargs)
    try:
        proto, source = frontend.to_onnx(model, opts.input_shape, opts.seed)
    except SpsError as e:
        return Explanation(str(model), [f"the model: {e}"])
    out = Explanation(source)
    try:
        g = ir.import_onnx(proto, source)
        if len(g.inputs) != 1:
            out.blocking.append(f"the graph: {len(g.inputs)} inputs {g.inputs}; only one is supported")
            return out
        g = passes.run_pipeline(g, guard=False)
    except SpsError as e:
        out.blocking.append(f"the model: {e}")
        return out
    for b in passes.blockers(g):
        out.blocking.append(f"{passes.describe(g, b.node)}\n       why: {b.reason}\n       fix: {b.fix}"
                            + (f"\n       from ONNX nodes: {', '.join(b.node.sources)}"
                               if b.node.sources != [b.node.name] else ""))
    if out.blocking:
        return out
    try:
        g = passes.split_wide_reductions(g, opts.hw)
        layers = lower.to_layers(g)
        lower.apply_pps(layers, opts.pps, opts.first_layer_dense, opts.hw)
    except SpsError as e:
        out.blocking.append(f"lowering: {e}")
        return out
    for layer in layers:
        try:
            fit.check_fits([layer], opts.hw)
        except SpsError as e:
            out.blocking.append(f"layer {layer.name} ({layer.op.name}): {e}")
    for layer in layers:
        what = f"{layer.op.name} {list(layer.in_shape)} -> {list(layer.out_shape)}"
        if layer.op.name == "CONV":
            what += f" kernel {layer.kernel[0]}x{layer.kernel[1]}, {layer.pps_how}"
        flags = (" +relu" if layer.relu else "") + (f" clip {layer.clip_max:g}" if layer.clip_max else "")
        out.layers.append(f"{layer.name}: {what}{flags} <- {', '.join(layer.sources)}")
    out.host_steps = [f"{s['op']} on {s['tensor']} (axis {s['axis']}) <- {s.get('source', '')}"
                      for s in g.host_steps]
    return out
