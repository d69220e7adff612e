"""Fill idle rows: re-encode a PPS layer with fewer, merged residue classes when that runs in fewer cycles.

The array's rows hold the filters of one residue class (o mod P, hw/layout.py). A layer with fewer than R filters
per class leaves rows idle: ResNet-20's 16-filter layers at PPS(8, 4) fill 2 of the zcu104's 16 rows, so the
array runs 8 row groups of 4 steps per input channel where a dense layer would run one group of 9.

Merging classes fixes that without touching the hardware. For a divisor P' of P, filter o at input channel i
takes pattern (o + i) mod P' of a table whose mask j is the union of the original masks q = j, j + P', ... (the
patterns (o + i) mod P can be, since P' divides P), padded with further taps to the largest union's K' taps.
The weights are the same, so the extra taps hold zeros and the outputs are bit for bit those of the P-pattern
encoding; the layer runs P' classes of up to P / P' times more filters, K' steps per channel instead of K.
P' = 1 is one class with every filter. The pass takes, per layer, the P' with the fewest modelled cycles
(hw/cycles.py, board DDR) among those whose row group fits the weight buffer; P itself on a tie. A merged layer
stores K' bytes a kernel instead of K, but its fuller groups no longer pad idle rows with zero weights, so the
packed weights can even shrink (ResNet-20 on zcu104: 366,528 -> 243,136 image bytes). The model's own table stays
in `Layer.pruned_masks` (its sparsity: what the storage formats and the MAC efficiency count).
"""
from __future__ import annotations

from typing import List, Tuple

from ..hw import cycles, layout
from ..hw.config import HwConfig
from ..hw.descriptor import Op
from .fit import bands_of, whole_map_descriptor
from .lower import Layer


def merged_masks(masks: List[int], merged: int) -> List[int]:
    """The table of `merged` patterns (a divisor of len(masks)) whose mask j covers every mask q = j (mod merged),
    each padded with the lowest free taps to the largest union's tap count."""
    P = len(masks)
    if merged < 1 or P % merged:
        raise ValueError(f"{merged} patterns do not divide {P}")
    unions = [0] * merged
    for q, m in enumerate(masks):
        unions[q % merged] |= m
    k = max(bin(u).count("1") for u in unions)
    out = []
    for u in unions:
        for t in range(9):
            if bin(u).count("1") == k:
                break
            u |= (1 << t)
        out.append(u)
    return out


def modelled_cycles(layer: Layer, masks: List[int], hw: HwConfig) -> int:
    """Modelled cycles of `layer` encoded with the pattern table `masks` (all its bands, board DDR)."""
    d = whole_map_descriptor(layer)
    d.pps, d.patterns, d.nnz, d.pattern_masks = True, len(masks), bin(masks[0]).count("1"), list(masks)
    return sum(cycles.layer_cycles(b, hw, cycles.ZCU104_DDR).total for b in bands_of(layer, d, hw))


def choices(layer: Layer, hw: HwConfig) -> List[Tuple[int, List[int], int]]:
    """(P', table, modelled cycles) for every divisor P' of the layer's P whose row group fits the weight
    buffer, P itself first."""
    P = len(layer.masks)
    out = []
    for merged in [P] + [p for p in range(P - 1, 0, -1) if P % p == 0]:
        masks = merged_masks(layer.masks, merged)
        k = bin(masks[0]).count("1")
        if layout.group_weight_bytes(layer.in_shape[0], k, hw.rows) > hw.weight_buf_bytes:
            continue
        out.append((merged, masks, modelled_cycles(layer, masks, hw)))
    return out


def merge_classes(layers: List[Layer], hw: HwConfig) -> None:
    """Re-encode every PPS layer with the pattern table of fewest modelled cycles (see the module text)."""
    for layer in layers:
        if layer.op != Op.CONV or not layer.masks or len(layer.masks) == 1:
            continue
        options = choices(layer, hw)
        if not options:
            continue                 # not even P fits: fit.check_fits names the layer
        best = min(options, key=lambda c: c[2])        # min keeps the first (P itself) on a tie
        if best[0] != len(layer.masks):
            layer.pruned_masks, layer.masks = list(layer.masks), best[1]
