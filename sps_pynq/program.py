"""A packed model in memory: the arena image, the layer program and what the host does around it.

The compiler produces a `Program`; `sps_pynq.model_file` stores it as a `.spsmodel`; every backend runs it.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .hw.config import HwConfig
from .hw.descriptor import DESC_BYTES, STATS_RECORD_BYTES, Descriptor, Op, unpack_program

__all__ = ["STATS_RECORD_BYTES", "TensorInfo", "LayerInfo", "Program"]


@dataclass
class TensorInfo:
    name: str                  # the ONNX/graph name of the tensor
    shape: Tuple[int, ...]     # (C, H, W) as stored in the arena, int8 CHW, batch excluded
    scale: float               # real value = int8 value * scale
    offset: int                # byte offset in the arena

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "scale": self.scale, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorInfo":
        return cls(d["name"], tuple(int(s) for s in d["shape"]), float(d["scale"]), int(d["offset"]))


@dataclass
class LayerInfo:
    name: str                  # a readable layer name, e.g. "conv3" or the ONNX node name
    sources: List[str]         # ONNX nodes folded into this layer (Conv, BatchNormalization, Relu, ...)
    out_scale: float           # scale of the layer's int8 output

    def to_dict(self) -> dict:
        return {"name": self.name, "sources": list(self.sources), "out_scale": self.out_scale}

    @classmethod
    def from_dict(cls, d: dict) -> "LayerInfo":
        return cls(d["name"], list(d.get("sources", [])), float(d["out_scale"]))


@dataclass
class Program:
    hw: HwConfig               # the hardware this was packed for
    image: bytes               # initial arena contents from offset 0: descriptors, weights, params
    arena_size: int            # total arena bytes (image + activation buffers + stats)
    prog_offset: int           # byte offset of the first descriptor
    layers: List[LayerInfo]    # one per descriptor, same order
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    stats_offset: int          # where the core writes per-layer statistics (STATS_RECORD_BYTES each)
    host_steps: List[dict] = field(default_factory=list)   # after dequantizing outputs, e.g. {"op": "softmax"}
    metadata: dict = field(default_factory=dict)            # source model, PPS settings, calibration, ...
    # What the host does to the first input before quantizing it (Session.run): x' = (x * scale - mean) / std,
    # mean and std per channel (or one value for all): {"scale": s, "mean": [...], "std": [...]}. None: nothing.
    preprocess: Optional[dict] = None
    classes: Optional[List[str]] = None     # names of the first output's classes (its elements, in order)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def descriptors(self) -> List[Descriptor]:
        end = self.prog_offset + self.num_layers * DESC_BYTES
        return unpack_program(self.image[self.prog_offset:end], self.num_layers)

    def conv_macs(self) -> Tuple[int, int]:
        """(nonzero MACs, dense-equivalent MACs) of one inference."""
        descs = self.descriptors()
        return sum(self.layer_macs(descs)), sum(d.dense_macs() for d in descs if d.op == Op.CONV)

    def layer_macs(self, descs: Optional[List[Descriptor]] = None) -> List[int]:
        """Nonzero MACs of each descriptor (Descriptor.sparse_macs: K taps a kernel). Where the compiler merged
        residue classes (compiler/fill_rows.py, metadata "encoded") the descriptor stores K' >= K taps a kernel,
        the extra ones zero: those layers count the model's K (metadata "K"), not K'."""
        descs = self.descriptors() if descs is None else descs
        macs = [d.sparse_macs() for d in descs]
        names = [info.name.split("[band ")[0] for info in self.layers]
        # The metadata comes from a file (untrusted): anything but the compiler's shape leaves the descriptors'.
        layers = self.metadata.get("layers") if isinstance(self.metadata, dict) else None
        for m in layers if isinstance(layers, list) else []:
            enc = m.get("encoded") if isinstance(m, dict) else None
            try:
                k, k_enc = int(m["K"]), int(enc["K"])
            except (TypeError, KeyError, ValueError, OverflowError):
                continue                   # no merge recorded
            for j, (name, d) in enumerate(zip(names, descs)):
                if name == m.get("name") and d.op == Op.CONV and d.nnz == k_enc and 0 < k <= k_enc:
                    macs[j] = macs[j] // k_enc * k
        return macs

    def input(self, name: Optional[str] = None) -> TensorInfo:
        if name is None:
            return self.inputs[0]
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)
