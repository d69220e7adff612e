"""Quantized layers -> descriptors, packed weights and parameters, the arena plan: a `Program`.

Arena layout (every buffer ALIGN-aligned, offsets in bytes from the arena base):

    0                 descriptors, DESC_BYTES each, in program order (prog_offset = 0): one per layer, or one
                      per band for a layer whose input is larger than the activation buffer (fit.bands_of)
    ...               per CONV layer: packed weights (layout.pack_weights), then parameters (layout.pack_params)
    image end         activation buffers (network input, outputs, reused intermediates; see plan.py)
    stats_offset      STATS_RECORD_BYTES per layer, written by the core
    arena_size

The image (what the .spsmodel stores) is everything before the activation buffers.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..errors import CompileError
from ..hw import layout
from ..hw.config import HwConfig
from ..hw.descriptor import DESC_BYTES, Descriptor, Op
from ..program import STATS_RECORD_BYTES, LayerInfo, Program, TensorInfo
from .keep import chain_kept_outputs
from .fit import bands_of, set_sharing, whole_map_descriptor
from .lower import Layer
from .plan import align, plan_buffers
from .quantize import QuantLayer

def build_program(layers: List[Layer], quant: Dict[str, QuantLayer], scales: Dict[str, float], hw: HwConfig,
                  net_inputs: List[str], net_outputs: List[str], shapes: Dict[str, tuple],
                  host_steps: List[dict], metadata: dict, keep_outputs: bool = True) -> Program:
    """The Program of `layers` (which have passed fit.check_fits), their quantized parameters and the tensors'
    scales and shapes: the arena image (descriptors, packed weights and parameters) and the buffer plan.
    keep_outputs: chain layers through the activation buffer where the rules allow (keep.py)."""
    if not layers:
        raise CompileError("the model has no layer the hardware runs (an empty graph after import)")
    # Bands depend on the map offsets only modulo ALIGN, so the count is known before the arena is placed.
    n = sum(len(bands_of(layer, whole_map_descriptor(layer), hw)) for layer in layers)
    # 1. weights and parameters, right after the descriptors
    offset = align(n * DESC_BYTES)
    chunks = []            # (offset, bytes)
    placed = {}
    for layer in layers:
        if layer.op != Op.CONV:
            continue
        q = quant[layer.name]
        wbytes = layout.pack_weights(q.weights, hw.rows, layer.masks or None, layer.slot_shift)
        pbytes = layout.pack_params(q.bias, q.mult, q.shift, hw.rows, layer.P, layer.slot_shift)
        w_off = offset
        p_off = align(w_off + len(wbytes))
        offset = align(p_off + len(pbytes))
        chunks += [(w_off, wbytes), (p_off, pbytes)]
        placed[layer.name] = (w_off, len(wbytes), p_off, len(pbytes))
    image_end = offset
    # 2. activation buffers
    tensor_bytes = {t: int(np.prod(shapes[t][1:])) for t in shapes}
    where = plan_buffers(layers, tensor_bytes, net_inputs, net_outputs, image_end)
    buffers = sorted({id(b): b for b in where.values()}.values(), key=lambda b: b.offset)
    act_end = max(b.offset + b.nbytes for b in buffers)
    stats_offset = align(act_end)
    arena_size = align(stats_offset + n * STATS_RECORD_BYTES)
    # 3. descriptors: each layer's, or its bands'; then chained through the activation buffer (keep.py)
    per_layer = []
    for layer in layers:
        parts = bands_of(layer, _descriptor(layer, quant[layer.name], where, placed.get(layer.name)), hw)
        for d in parts:
            why = layout.share_problem(d, hw) if d.share else None
            if why:          # fill_rows checked the whole-map shape; the arena's offsets keep the rules
                raise CompileError(f"internal error: layer {layer.name} cannot share residue classes: {why}; "
                                   f"please report it (compile with fill_rows=False, pack --no-fill-rows, meanwhile)")
        per_layer.append((layer, parts))
    if keep_outputs:
        descs = [d for _, parts in per_layer for d in parts]
        chain_kept_outputs(descs, hw)
        at = 0
        for k, (layer, parts) in enumerate(per_layer):
            per_layer[k] = (layer, descs[at:at + len(parts)])
            at += len(parts)
    packed, infos, band_counts = [], [], {}
    for layer, parts in per_layer:
        band_counts[layer.name] = len(parts)
        for j, d in enumerate(parts):
            try:
                packed.append(d.pack())          # checks every field against its width
            except ValueError as e:
                raise CompileError(f"layer {layer.name}: {e} (input {list(layer.in_shape)}, output "
                                   f"{list(layer.out_shape)}, kernel {list(layer.kernel)}); the hardware cannot "
                                   f"run this layer shape") from e
            name = layer.name if len(parts) == 1 else f"{layer.name}[band {j + 1}/{len(parts)}]"
            infos.append(LayerInfo(name, list(layer.sources), float(quant[layer.name].out_scale)))
    if len(packed) != n:
        raise CompileError(f"internal error: {len(packed)} descriptors where {n} were planned (banding depends "
                           f"on more than the map offsets modulo ALIGN); please report it")
    image = bytearray(image_end)
    image[0:n * DESC_BYTES] = b"".join(packed)
    for off, data in chunks:
        image[off:off + len(data)] = data
    metadata = dict(metadata)
    metadata["buffers"] = [b.to_dict() for b in buffers]
    metadata["layers"] = [dict(_layer_meta(layer, placed.get(layer.name)), bands=band_counts[layer.name])
                          for layer in layers]
    metadata["image_bytes"] = image_end

    def tinfo(t):
        return TensorInfo(t, _chw(shapes[t]), float(scales[t]), where[t].offset)
    return Program(hw=hw, image=bytes(image), arena_size=arena_size, prog_offset=0, layers=infos,
                   inputs=[tinfo(t) for t in net_inputs], outputs=[tinfo(t) for t in net_outputs],
                   stats_offset=stats_offset, host_steps=list(host_steps), metadata=metadata)


def _chw(shape) -> tuple:
    s = tuple(int(v) for v in shape[1:])
    return s + (1,) * (3 - len(s)) if len(s) < 3 else s


def _descriptor(layer: Layer, q: QuantLayer, where, placed) -> Descriptor:
    (c, h, w), (oc, oh, ow) = layer.in_shape, layer.out_shape
    pt, pl, pb, pr = layer.pads
    d = Descriptor(op=layer.op, in_offset=where[layer.inputs[0]].offset + layer.in_byte_offset, in_c=c, in_h=h,
                   in_w=w,
                   out_offset=where[layer.output].offset, out_c=oc, out_h=oh, out_w=ow,
                   kh=layer.kernel[0], kw=layer.kernel[1], stride_h=layer.strides[0], stride_w=layer.strides[1],
                   pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr, relu=layer.relu)
    if layer.op == Op.CONV:
        d.pps = bool(layer.masks)
        d.patterns, d.nnz = layer.P, layer.K
        d.pattern_masks = list(layer.masks)
        d.weight_offset, d.param_offset = placed[0], placed[2]
    elif layer.op == Op.AVGPOOL:
        d.mult, d.shift = int(q.mult[0]), int(q.shift[0])
    elif layer.op == Op.ADD:
        d.in2_offset = where[layer.inputs[1]].offset
        d.mult, d.mult2, d.shift = int(q.mult[0]), int(q.mult[1]), int(q.shift[0])
        d.kh = d.kw = 1
    set_sharing(d, layer)
    return d


def _layer_meta(layer: Layer, placed) -> dict:
    m = {"name": layer.name, "op": layer.op.name, "inputs": list(layer.inputs), "output": layer.output,
         "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape)}
    if layer.op == Op.CONV:
        table = layer.pruned_masks or layer.masks          # the model's sparsity (P, K, masks)
        m.update({"P": len(table) if table else 1, "K": bin(table[0]).count("1") if table else layer.K,
                  "mode": layer.pps_how, "energy_kept": round(layer.energy_kept, 6), "masks": list(table),
                  "weight_bytes": placed[1], "param_bytes": placed[3]})
        if layer.pruned_masks or layer.slot_shift is not None:
            # fill_rows: the descriptor's table, K' >= K taps a kernel (the extra ones zero); slot_shift when its
            # classes share row groups (None: they do not)
            m["encoded"] = {"P": layer.P, "K": layer.K, "masks": list(layer.masks), "slot_shift": layer.slot_shift}
    return m
