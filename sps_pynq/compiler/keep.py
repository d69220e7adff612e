"""Kept outputs: the descriptors of a program chained through the activation buffer (hw/residency.py).

Where a layer reads exactly the map the layer before it wrote, the one before also writes it into the activation
buffer (`keep`, skewed for a reader with an even stride) and the layer skips its input load (`resident`, in the
other half of the slices than the input before). An ADD whose *second* input is the map before has its inputs
swapped first (requant(a * M1 + b * M2) is the same sum either way). Only pairs that keep every rule of
hw/residency.py are chained; the outputs are the same bit for bit, the input loads of the chained layers are gone.
"""
from __future__ import annotations

import dataclasses
from typing import List

from ..hw import bands, residency
from ..hw.config import HwConfig
from ..hw.descriptor import Descriptor, Op


def _swapped_add(d: Descriptor) -> Descriptor:
    return dataclasses.replace(d, in_offset=d.in2_offset, in2_offset=d.in_offset, mult=d.mult2, mult2=d.mult)


def chain_kept_outputs(descs: List[Descriptor], hw: HwConfig) -> int:
    """Set keep / resident / in_half in `descs` (program order, changed in place) wherever the rules allow;
    returns the number of layers that no longer load their input."""
    chained = 0
    for j in range(1, len(descs)):
        prev, d = descs[j - 1], descs[j]
        if d.op == Op.ADD and d.in_offset != prev.out_offset and d.in2_offset == prev.out_offset:
            d = _swapped_add(d)
        kept = dataclasses.replace(prev, keep=True, keep_skew=bands.act_skew(d))
        reader = dataclasses.replace(d, resident=True, in_half=not (prev.resident and prev.in_half))
        if (residency.keep_problem(kept, hw) or residency.resident_problem(reader, hw)
                or residency.chain_problem(kept, reader)):
            continue
        descs[j - 1], descs[j] = kept, reader
        chained += 1
    return chained
