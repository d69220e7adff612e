"""Fill idle rows: re-encode a PPS layer with fewer, merged residue classes, or with classes sharing row groups,
when that runs in fewer cycles.

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

Shared classes (descriptor `share`, FORMAT_VERSION 3, hw/layout.py) fill the rows with the hardware's help: S
classes of a table of P' patterns run in one row group, slot d of 2^slot_shift rows holding class g * S + d and
reading, at step i, the channel c_d(i) that gives it the same pattern as slot 0 (the activation buffer serves
ACT_LANES channels of a pixel in one access). The table and the weights are unchanged; there are
ceil(min(P', O) / S) groups of K' steps per channel. For every candidate table (P itself and each merged P'),
the pass also models the shared encoding with the smallest slot that holds a class (slot_shift =
ceil(log2(ceil(O / P')))) when it holds S >= 2 classes and the layer keeps the rules (`layout.share_problem` on
its whole-map descriptor: P' dividing ACT_LANES, I a multiple of ACT_LANES, stride 1 with out_w == in_w, channel
planes of in_h * in_w bytes a multiple of the AXI beat) and its bands fit the buffer's slices; the fewest
modelled cycles win, the plain encoding on a tie. The choice is `Layer.slot_shift` (None: not shared), which
emit.py writes into the descriptor and uses to pack the weights and parameters.

Pools fill rows the same way: a shared MAXPOOL / AVGPOOL (`share`, slot_shift 0) runs min(R, ACT_LANES)
channels a group, one a row, where the core runs one channel a group otherwise (a global average pool of 64
channels: 8 groups instead of 64 on the 16-row array). The pass shares a pool when the rules allow it
(`layout.share_problem`: channel planes a multiple of the AXI beat apart, stride 1 with out_w == in_w or one
output pixel), its bands fit the slices, and it models fewer cycles.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from ..errors import CompileError
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


def _encoded(layer: Layer, masks: List[int], slot_shift: Optional[int]):
    d = whole_map_descriptor(layer)
    d.pps, d.patterns, d.nnz, d.pattern_masks = True, len(masks), bin(masks[0]).count("1"), list(masks)
    d.share, d.slot_shift = slot_shift is not None, slot_shift or 0
    return d


def modelled_cycles(layer: Layer, masks: List[int], hw: HwConfig, slot_shift: Optional[int] = None) -> int:
    """Modelled cycles of `layer` encoded with the pattern table `masks` (all its bands, board DDR), its classes
    sharing row groups in slots of 2^slot_shift rows unless `slot_shift` is None."""
    d = _encoded(layer, masks, slot_shift)
    return sum(cycles.layer_cycles(b, hw, cycles.ZCU104_DDR).total for b in bands_of(layer, d, hw))


def share_slot_shift(layer: Layer, masks: List[int], hw: HwConfig) -> Optional[int]:
    """The slot_shift with which the classes of table `masks` can share row groups on `hw` (the smallest slot
    that holds a class, S >= 2 classes a group, the rules of layout.share_problem on the layer's whole-map
    descriptor), or None."""
    return layout.share_slot_shift(_encoded(layer, masks, None), hw)


def choices(layer: Layer, hw: HwConfig) -> List[Tuple[int, List[int], int, Optional[int]]]:
    """(P', table, modelled cycles, slot_shift) for every divisor P' of the layer's P whose row group fits the
    weight buffer, plain (slot_shift None) and, where the classes can share row groups, shared; P itself
    first, each table's plain encoding before its shared one."""
    P = len(layer.masks)
    out = []
    for merged in [P] + [p for p in range(P - 1, 0, -1) if P % p == 0]:
        masks = merged_masks(layer.masks, merged)
        k = bin(masks[0]).count("1")
        if layout.group_weight_bytes(layer.in_shape[0], k, hw.rows) > hw.weight_buf_bytes:
            continue
        out.append((merged, masks, modelled_cycles(layer, masks, hw), None))
        slot_shift = share_slot_shift(layer, masks, hw)
        if slot_shift is not None:
            try:
                out.append((merged, masks, modelled_cycles(layer, masks, hw, slot_shift), slot_shift))
            except CompileError:
                pass                 # no band of the shared layer fits the buffer's slices
    return out


def _pool_cycles(layer: Layer, hw: HwConfig, share: bool) -> int:
    d = whole_map_descriptor(layer)
    d.share = share
    return sum(cycles.layer_cycles(b, hw, cycles.ZCU104_DDR).total for b in bands_of(layer, d, hw))


def share_pool(layer: Layer, hw: HwConfig) -> bool:
    """True when pool `layer` runs in fewer modelled cycles with its channels sharing row groups (and may)."""
    d = whole_map_descriptor(layer)
    d.share = True
    if layout.share_problem(d, hw):
        return False
    try:
        return _pool_cycles(layer, hw, True) < _pool_cycles(layer, hw, False)
    except CompileError:
        return False                 # no band of the shared pool fits the buffer's slices


def merge_classes(layers: List[Layer], hw: HwConfig) -> None:
    """Re-encode every PPS layer with the pattern table and sharing of fewest modelled cycles, and share the
    channels of pools where faster (see the module text)."""
    for layer in layers:
        if layer.op in (Op.MAXPOOL, Op.AVGPOOL):
            layer.slot_shift = 0 if share_pool(layer, hw) else None
            continue
        if layer.op != Op.CONV or not layer.masks or len(layer.masks) == 1:
            continue
        options = choices(layer, hw)
        if not options:
            continue                 # not even P fits: fit.check_fits names the layer
        best = min(options, key=lambda c: c[2])        # min keeps the first (P itself, plain) on a tie
        if best[0] != len(layer.masks):
            layer.pruned_masks, layer.masks = list(layer.masks), best[1]
        layer.slot_shift = best[3]
