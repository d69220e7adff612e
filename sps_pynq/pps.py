"""Periodic pattern-based sparsity (PPS): pattern tables, projection and detection. numpy only (runs on the board).

A 3x3 conv layer W[O][I][3][3] is PPS(P, K) when a table of P patterns exists, each a 9-bit mask with exactly K
bits set (bit t = tap t = ky * 3 + kx), such that kernel (o, i) is zero outside pattern masks[(o + i) % P].
All kernels with the same residue r = (o + i) mod P form "class r" and share one pattern.

- `project` prunes a dense layer to PPS(P, K), keeping the most L2 energy (closed form, one top-K per class).
- `detect` recovers (P, K, masks) from an already pruned layer, or says which kernel breaks which rule.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import NotPpsError, PpsShapeError

MAX_P = 16          # the hardware's pattern table holds at most 16 masks (hw/descriptor.py MAX_PATTERNS)
TAPS = 9            # a 3x3 kernel


class PpsSpecError(PpsShapeError, ValueError, argparse.ArgumentTypeError):
    """A bad "PxK" text. Also an ArgumentTypeError, so argparse `type=` prints this message as a usage error
    (for a plain ValueError it would print only "invalid value")."""


# ----------------------------------------------------------------------------------------------------------- masks
def taps_of(mask: int) -> List[int]:
    """Tap numbers set in a 9-bit mask, increasing."""
    return [t for t in range(TAPS) if mask >> t & 1]


def mask_of(taps: Sequence[int]) -> int:
    m = 0
    for t in taps:
        m |= 1 << int(t)
    return m


def popcount(mask: int) -> int:
    return bin(mask).count("1")


def _table_bits(masks: Sequence[int]) -> np.ndarray:
    """(P, 9) bool array: bits[p, t] is True when tap t is in pattern p."""
    m = np.asarray(list(masks), dtype=np.int64)
    return (m[:, None] >> np.arange(TAPS)[None, :]) & 1 == 1


def _residues(O: int, I: int, P: int) -> np.ndarray:
    """(O, I) int array of the class (o + i) % P of every kernel."""
    return (np.arange(O)[:, None] + np.arange(I)[None, :]) % P


def parse_pps_spec(text: str) -> Tuple[int, int]:
    """"8x4" -> (P, K) = (8, 4), with P in 1..16 and K in 1..9."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise PpsSpecError(f"bad PPS spec {text!r}: expected PxK, e.g. 8x4 (P patterns of K taps each)")
    P, K = int(m.group(1)), int(m.group(2))
    if not 1 <= P <= MAX_P:
        raise PpsSpecError(f"bad PPS spec {text!r}: P={P} patterns, but P must be in 1..{MAX_P}")
    if not 1 <= K <= TAPS:
        raise PpsSpecError(f"bad PPS spec {text!r}: K={K} taps per pattern, but K must be in 1..{TAPS}")
    return P, K


def check_table(masks: Sequence[int], K: Optional[int] = None, name: str = "layer") -> None:
    """Raise NotPpsError unless `masks` is 1..16 masks of 9 bits, all with the same K bits set."""
    masks = list(masks)
    if not 1 <= len(masks) <= MAX_P:
        raise NotPpsError(f"{name}: a pattern table needs 1..{MAX_P} masks, got {len(masks)}")
    counts = []
    for p, m in enumerate(masks):
        if not 0 <= int(m) < 1 << TAPS:
            raise NotPpsError(f"{name}: pattern {p} = {m:#x} is not a 9-bit mask")
        counts.append(popcount(int(m)))
    want = counts[0] if K is None else K
    if want < 1 or any(c != want for c in counts):
        raise NotPpsError(f"{name}: every pattern needs exactly K={want} >= 1 taps, got tap counts {counts}")


def kernel_mask(shape: Sequence[int], masks: Sequence[int]) -> np.ndarray:
    """Bool array of `shape` (O, I, 3, 3): True where kernel (o, i) may be nonzero, i.e. inside masks[(o+i) % P]."""
    O, I = int(shape[0]), int(shape[1])
    bits = _table_bits(masks)
    return bits[_residues(O, I, len(bits))].reshape(O, I, 3, 3)


def check_eligible(weight_shape: Sequence[int], groups: int = 1, name: str = "layer") -> None:
    """Raise PpsShapeError unless the weights are those of a 3x3 conv with groups == 1."""
    shape = tuple(int(s) for s in weight_shape)
    if len(shape) != 4:
        raise PpsShapeError(f"{name}: PPS needs a 4-D conv weight [O, I, 3, 3], got shape {list(shape)}; "
                            "keep this layer dense")
    if shape[2:] != (3, 3):
        raise PpsShapeError(f"{name}: PPS needs 3x3 kernels, weight shape {list(shape)} has "
                            f"{shape[2]}x{shape[3]}; keep this layer dense")
    if groups != 1:
        raise PpsShapeError(f"{name}: PPS needs groups == 1, got groups={groups} (weight shape {list(shape)}); "
                            "keep this layer dense")


# ----------------------------------------------------------------------------------------------------- per class
def _class_sum(x: np.ndarray, P: int) -> np.ndarray:
    """Sum x[O, I, 9] over every class (o + i) % P -> (P, 9).

    Vectorized: zero-pad O and I to multiples of P, fold o and i to o mod P and i mod P (P x P blocks), then
    gather the P x P blocks into the P classes (a + b) mod P.
    """
    O, I, T = x.shape
    Op, Ip = -(-O // P) * P, -(-I // P) * P
    if (Op, Ip) != (O, I):
        pad = np.zeros((Op, Ip, T), dtype=x.dtype)
        pad[:O, :I] = x
        x = pad
    blocks = x.reshape(Op // P, P, Ip // P, P, T).sum(axis=0).sum(axis=1)     # (o mod P, i mod P, T)
    res = _residues(P, P, P)
    return np.stack([blocks[res == r].sum(axis=0) for r in range(P)])


def _weights_3d(w, name: str) -> np.ndarray:
    w = np.asarray(w)
    check_eligible(w.shape, 1, name)
    return w.reshape(w.shape[0], w.shape[1], TAPS)


def _top_k_mask(scores: np.ndarray, K: int) -> int:
    """Mask of the K taps with the largest scores; ties go to the lowest tap number."""
    order = np.argsort(-scores, kind="stable")
    return mask_of(order[:K])


# ----------------------------------------------------------------------------------------------------- projection
@dataclass
class Projection:
    weights: np.ndarray       # the projected weights: w inside the patterns, zero elsewhere (same dtype as w)
    masks: List[int]          # the chosen table: P masks of K bits each
    energy_kept: float        # ||projected||^2 / ||w||^2 (1.0 for an all-zero w)

    @property
    def P(self) -> int:
        return len(self.masks)

    @property
    def K(self) -> int:
        return popcount(self.masks[0])


def class_energy(w, P: int, name: str = "layer") -> np.ndarray:
    """(P, 9) float64: the squared weights of class r summed per tap."""
    return _class_sum(np.square(_weights_3d(w, name), dtype=np.float64), P)


def project(w, P: int, K: int, name: str = "layer") -> Projection:
    """Project a dense 3x3 layer onto PPS(P, K), keeping the most L2 energy.

    With the table fixed, the best PPS tensor keeps w inside the patterns, so the energy kept is the sum over
    classes of the class energy on the pattern's taps; classes do not interact, so each class independently keeps
    its K taps of largest summed squared weight. That is optimal over all C(9, K)^P tables.
    """
    if not 1 <= P <= MAX_P or not 1 <= K <= TAPS:
        raise PpsSpecError(f"{name}: PPS({P}, {K}) is out of range: P must be in 1..{MAX_P}, K in 1..{TAPS}")
    w = np.asarray(w)
    energy = class_energy(w, P, name)
    masks = [_top_k_mask(energy[r], K) for r in range(P)]
    projected = w * kernel_mask(w.shape, masks)                 # same dtype as w (bool multiplies as 0/1)
    total = float(energy.sum())
    kept = float(sum(energy[r][taps_of(masks[r])].sum() for r in range(P)))
    return Projection(projected, masks, kept / total if total > 0 else 1.0)


# ------------------------------------------------------------------------------------------------------ detection
@dataclass
class PpsInfo:
    P: int                    # number of patterns
    K: int                    # taps per pattern
    masks: List[int]          # P masks with K bits each; kernel (o, i) is zero outside masks[(o + i) % P]


def _pad_union(union: int, K: int) -> int:
    """Grow a class's union of nonzero taps to exactly K taps with the lowest-numbered unused taps."""
    m = union
    for t in range(TAPS):
        if popcount(m) >= K:
            break
        m |= 1 << t
    return m


def _kernel_bits(nz: np.ndarray) -> np.ndarray:
    """(O, I, 9) bool -> (O, I) uint16 masks of each kernel's nonzero taps (bit t = tap t)."""
    weights = (1 << np.arange(TAPS)).astype(np.float32)                    # sums <= 511: exact in float32, and
    return (nz.view(np.uint8) @ weights).astype(np.uint16)                 # a BLAS matmul beats packbits 5x


def _unions(kbits: np.ndarray, P: int) -> List[int]:
    """Per class r of period P, the union (bitwise OR) of the nonzero-tap masks of its kernels."""
    O, I = kbits.shape
    Op, Ip = -(-O // P) * P, -(-I // P) * P
    if (Op, Ip) != (O, I):
        pad = np.zeros((Op, Ip), dtype=kbits.dtype)
        pad[:O, :I] = kbits
        kbits = pad
    # (o mod P, i mod P); two single-axis reductions are much faster than one over axis=(0, 2)
    folded = np.bitwise_or.reduce(np.bitwise_or.reduce(kbits.reshape(Op // P, P, Ip // P, P), axis=0), axis=1)
    res = _residues(P, P, P)
    return [int(np.bitwise_or.reduce(folded[res == r])) for r in range(P)]


def detect(w, max_patterns: int = MAX_P, name: str = "layer", P: Optional[int] = None,
           K: Optional[int] = None) -> PpsInfo:
    """Recover the PPS structure (P, K, masks) of an already pruned 3x3 layer.

    For a candidate P, class r needs every tap where any of its kernels is nonzero (the union U_r), so the least
    K for that P is max_r |U_r|; classes with |U_r| < K are padded with their lowest-numbered unused taps.
    The choice: the least K over P in 1..max_patterns (fewest stored weights), then the least P with that K
    (smallest table). Multiples of a valid P are valid too, so the least P is the natural period.
    Any tensor is PPS(1, 9) (dense), so without constraints detection always succeeds; pass `P` and/or `K` to
    require them, and NotPpsError says which kernel breaks the rule. An all-zero layer gives P = 1 (or the
    given P), K = 1 (or the given K), masks of the lowest K taps.
    """
    w3 = _weights_3d(w, name)
    O, I = w3.shape[:2]
    if K is not None and not 1 <= K <= TAPS:
        raise PpsSpecError(f"{name}: K={K} is out of range 1..{TAPS}")
    if P is not None:
        if not 1 <= P <= MAX_P:
            raise PpsSpecError(f"{name}: P={P} is out of range 1..{MAX_P}")
        candidates = [P]
    else:
        if not 1 <= max_patterns <= MAX_P:
            raise PpsSpecError(f"{name}: max_patterns={max_patterns} is out of range 1..{MAX_P}")
        candidates = list(range(1, max_patterns + 1))
    kbits = _kernel_bits(w3 != 0)
    best = None                                   # (needed K, P, unions)
    for p in candidates:
        unions = _unions(kbits, p)
        need = max(1, max(popcount(u) for u in unions))
        if best is None or need < best[0]:
            best = (need, p, unions)
    need, p, unions = best
    if K is not None and need > K:
        p = _closest_period(w3, candidates, K)
        raise NotPpsError(_why_not(w3, p, K, _unions(kbits, p), name))
    k = need if K is None else K
    return PpsInfo(p, k, [_pad_union(u, k) for u in unions])


def _majority_patterns(w3: np.ndarray, P: int, K: int) -> Tuple[List[int], np.ndarray]:
    """Per class, the K taps the most kernels use (ties: more energy, then the lowest tap): the pattern a pruned
    layer was most likely meant to follow, so the kernels outside it are the odd ones. Also the (P, 9) counts."""
    counts = _class_sum((w3 != 0).astype(np.int64), P)
    energy = _class_sum(w3.astype(np.float64) ** 2, P)
    masks = [mask_of(np.lexsort((np.arange(TAPS), -energy[r], -counts[r]))[:K]) for r in range(P)]
    return masks, counts


def _closest_period(w3: np.ndarray, candidates: List[int], K: int) -> int:
    """The P whose majority patterns leave the fewest nonzero weights outside (ties: the least P)."""
    best = None
    for p in candidates:
        masks, counts = _majority_patterns(w3, p, K)
        lost = int(counts.sum() - sum(counts[r][taps_of(masks[r])].sum() for r in range(p)))
        if best is None or lost < best[0]:
            best = (lost, p)
    return best[1]


def _why_not(w3: np.ndarray, P: int, K: int, unions: List[int], name: str) -> str:
    """Explain why the layer is not PPS(P, K): a kernel with too many nonzeros, or one outside its class's pattern."""
    O, I = w3.shape[:2]
    shape = f"weight shape [{O}, {I}, 3, 3]"
    nz = w3 != 0
    per_kernel = nz.sum(axis=2)
    worst = np.unravel_index(int(np.argmax(per_kernel)), per_kernel.shape)
    if per_kernel[worst] > K:
        o, i = int(worst[0]), int(worst[1])
        return (f"{name} ({shape}) is not PPS({P}, {K}): kernel (o={o}, i={i}) has {int(per_kernel[worst])} "
                f"nonzeros at taps {np.flatnonzero(nz[o, i]).tolist()}, more than K={K}")
    # Every kernel fits in K taps, so some class's kernels disagree: take the class with the widest union, its
    # majority pattern and the first kernel outside it.
    r = max(range(P), key=lambda c: (popcount(unions[c]), -c))
    pattern = _majority_patterns(w3, P, K)[0][r]
    outside = nz & ~_table_bits([pattern])[0][None, None, :]
    in_class = _residues(O, I, P) == r
    bad = np.argwhere(in_class & outside.any(axis=2))
    o, i = (int(v) for v in bad[0])
    return (f"{name} ({shape}) is not PPS({P}, {K}): class (o+i) mod {P} = {r} has {popcount(unions[r])} distinct "
            f"nonzero taps {taps_of(unions[r])}, more than K={K}; e.g. kernel (o={o}, i={i}) has nonzeros at taps "
            f"{np.flatnonzero(outside[o, i]).tolist()} outside pattern {r} = taps {taps_of(pattern)} "
            f"(the {K} taps most kernels of the class use)")


def format_table(masks: Sequence[int]) -> str:
    """One line per pattern, e.g. "0: taps [1, 3, 4, 5]"."""
    return "\n".join(f"{p}: taps {taps_of(m)}" for p, m in enumerate(masks))
