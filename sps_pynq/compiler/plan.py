"""The arena's activation buffers: one per live tensor at a time, dead buffers reused.

Liveness follows the program order: a tensor is live from the layer that writes it to the last layer that reads
it (a residual input stays alive until its ADD). A layer's output never shares a buffer with its inputs (the
buffer is chosen before the inputs are released). The network inputs and outputs each get a buffer of their
own, never reused, so the host can write the next input and read outputs at fixed places.
Buffers are sized first and placed afterwards, so a reused buffer may grow to the largest tensor it holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from ..hw.descriptor import align


@dataclass
class Buffer:
    name: str
    nbytes: int
    tensors: List[str] = field(default_factory=list)
    offset: int = 0
    pinned: bool = False      # network input/output: never reused

    def to_dict(self) -> dict:
        return {"name": self.name, "offset": self.offset, "bytes": self.nbytes, "tensors": list(self.tensors)}


def plan_buffers(layers, tensor_bytes: Dict[str, int], net_inputs: List[str], net_outputs: List[str],
                 base: int) -> Dict[str, Buffer]:
    """{tensor: Buffer} for every activation tensor; buffers placed from offset `base`, each ALIGN-aligned."""
    last_use: Dict[str, int] = {}
    for j, layer in enumerate(layers):
        for t in layer.inputs:
            last_use[t] = j
    buffers: List[Buffer] = []
    where: Dict[str, Buffer] = {}
    free: List[Buffer] = []

    def new(name, nbytes, pinned=False):
        b = Buffer(name, nbytes, pinned=pinned)
        buffers.append(b)
        return b

    for k, t in enumerate(net_inputs):
        where[t] = new(f"input{k}", tensor_bytes[t], True)
        where[t].tensors.append(t)
    for j, layer in enumerate(layers):
        t, need = layer.output, tensor_bytes[layer.output]
        if t in where:      # e.g. a graph output that is also an input: nothing to allocate
            pass
        elif t in net_outputs:
            where[t] = new(f"output{net_outputs.index(t)}", need, True)
        else:
            fits = [b for b in free if b.nbytes >= need]
            if fits:
                b = min(fits, key=lambda b: b.nbytes)            # best fit
            elif free:
                b = max(free, key=lambda b: b.nbytes)            # grow the largest dead one
                b.nbytes = need
            else:
                b = new(f"act{len([x for x in buffers if not x.pinned])}", need)
            if b in free:
                free.remove(b)
            where[t] = b
        if t not in where[t].tensors:
            where[t].tensors.append(t)
        for x in dict.fromkeys(layer.inputs):   # ordered: the plan is deterministic
            if last_use.get(x) == j and not where[x].pinned and x not in net_outputs:
                free.append(where[x])
    offset = base
    for b in buffers:
        b.offset = align(offset)
        offset = b.offset + b.nbytes
    return where
