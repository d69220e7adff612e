"""PPS pruning of torch models: projection, masked fine-tuning, gradual K schedules, ONNX export. Workstation only.

    state = prune_pps(model, P=8, K=4)          # project every eligible 3x3 conv, register masks
    for x, y in loader:                         # your usual training loop, any optimizer
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        state.step(opt)                         # re-mask; moves to the next K of a schedule when due
    state.remove()                              # bake the masks into plain weights
    export_onnx(model, "pruned.onnx", (1, 28, 28))

How the masks hold: each pruned conv gets a `torch.nn.utils.parametrize` parametrization, so `conv.weight` is
always `original * mask`. The gradient reaching `original` is therefore masked too, so momentum buffers and Adam
moments stay zero at pruned positions, and weight decay of a zero is zero. `state.step()` additionally re-masks
`original` after every optimizer step, so even an optimizer that moves zero-gradient weights (or state left from
before a re-projection) cannot make a pruned weight nonzero: it is exactly zero in `conv.weight` at all times, and
in `original` after every `state.step()`.

The pattern table of a layer is chosen from its weights by `sps_pynq.pps.project` (closed form, most L2 energy).
A `schedule` steps K down over fine-tuning (e.g. 6 -> 5 -> 4), re-projecting with a freshly chosen table each time.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from . import pps
from .errors import PpsShapeError

Schedule = Sequence[Tuple[int, int]]     # [(optimizer step, K), ...], first step 0, steps increasing


class _PpsMask(nn.Module):
    """Parametrization: weight = original * mask. The mask is a buffer, so it follows the model's device/dtype."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


@dataclass
class PrunedLayer:
    name: str                 # module name in the model, e.g. "features.3"
    module: nn.Conv2d         # the conv itself
    P: int                    # patterns in the table
    K: int                    # taps per pattern now (changes along a schedule)
    masks: List[int]          # the current table: P 9-bit masks, bit t = tap ky*3+kx
    energy_kept: float        # ||W_pps||^2 / ||W||^2 at the last projection

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.module.weight.shape)


def _conv_layers(model: nn.Module) -> List[Tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _original(module: nn.Conv2d) -> nn.Parameter:
    return module.parametrizations.weight.original


def _mask_module(module: nn.Conv2d) -> _PpsMask:
    return module.parametrizations.weight[0]


def check_schedule(schedule: Schedule, K: int, name: str = "schedule") -> List[Tuple[int, int]]:
    """Validate a K schedule and return it as a list of (step, K) ints; it must start at step 0 and end at K."""
    sched = [(int(s), int(k)) for s, k in schedule]
    if not sched or sched[0][0] != 0:
        raise pps.PpsSpecError(f"{name} {list(schedule)!r}: needs (step, K) pairs starting at step 0")
    for (s0, _), (s1, _) in zip(sched, sched[1:]):
        if s1 <= s0:
            raise pps.PpsSpecError(f"{name} {sched}: steps must increase, got {s0} then {s1}")
    for s, k in sched:
        if not 1 <= k <= pps.TAPS:
            raise pps.PpsSpecError(f"{name} {sched}: K={k} at step {s} is out of range 1..{pps.TAPS}")
    if sched[-1][1] != K:
        raise pps.PpsSpecError(f"{name} {sched}: ends at K={sched[-1][1]} but the target is K={K}; "
                               f"make the last entry (step, {K})")
    return sched


def gradual_schedule(K: int, steps_per_stage: int, K_start: int = 9) -> List[Tuple[int, int]]:
    """K_start, K_start-1, ..., K, each held for `steps_per_stage` optimizer steps (K stays after the last)."""
    if K_start < K:
        raise pps.PpsSpecError(f"gradual_schedule: K_start={K_start} is below the target K={K}")
    return [(i * int(steps_per_stage), k) for i, k in enumerate(range(K_start, K - 1, -1))]


@dataclass
class PruneState:
    """What `prune_pps` did, and the handle a training loop uses: `step()` per optimizer step, `remove()` at the end."""
    P: int
    K: int                                        # the target K (the last of the schedule)
    layers: Dict[str, PrunedLayer]                # pruned convs by module name, in model order
    dense: Dict[str, str]                         # convs kept dense, by module name -> why
    schedule: List[Tuple[int, int]]               # [(step, K), ...]; [(0, K)] without a schedule
    steps: int = 0                                # optimizer steps seen by step()
    removed: bool = False
    history: List[Tuple[int, int]] = field(default_factory=list)   # (step, K) of every projection done

    @property
    def current_K(self) -> int:
        """The K the schedule asks for at the current step."""
        return self._k_at(self.steps)

    def _k_at(self, step: int) -> int:
        k = self.schedule[0][1]
        for s, kk in self.schedule:
            if s <= step:
                k = kk
        return k

    def tables(self) -> Dict[str, List[int]]:
        """{layer name: pattern table} for every pruned layer."""
        return {n: list(l.masks) for n, l in self.layers.items()}

    def _check_live(self, what: str) -> None:
        if self.removed:
            raise RuntimeError(f"PruneState.{what}: the masks were already removed (baked in) by remove()")

    @torch.no_grad()
    def project(self, K: int, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
        """Re-project every pruned layer onto PPS(P, K) with a table chosen anew from its current weights.

        With `optimizer`, its per-parameter state (momentum, Adam moments) is zeroed where weights were pruned.
        """
        self._check_live("project")
        for layer in self.layers.values():
            w = layer.module.weight.detach().cpu().numpy()
            proj = pps.project(w, self.P, K, name=layer.name)
            mask = torch.from_numpy(pps.kernel_mask(w.shape, proj.masks))
            buf = _mask_module(layer.module).mask
            buf.copy_(mask.to(device=buf.device, dtype=buf.dtype))
            layer.K, layer.masks, layer.energy_kept = K, list(proj.masks), proj.energy_kept
        self.history.append((self.steps, K))
        self._remask(optimizer)

    @torch.no_grad()
    def _remask(self, optimizer: Optional[torch.optim.Optimizer]) -> None:
        for layer in self.layers.values():
            orig, mask = _original(layer.module), _mask_module(layer.module).mask
            orig.mul_(mask)
            if optimizer is not None and orig in optimizer.state:
                for v in optimizer.state[orig].values():
                    if torch.is_tensor(v) and v.shape == orig.shape:
                        v.mul_(mask)

    def step(self, optimizer: Optional[torch.optim.Optimizer] = None) -> bool:
        """Call once after every optimizer step. Re-masks the weights and, when the schedule says so, re-projects
        to the next K. Returns True when it re-projected."""
        self._check_live("step")
        self.steps += 1
        want, have = self._k_at(self.steps), self._k_at(self.steps - 1)
        if want != have:
            self.project(want, optimizer)
            return True
        self._remask(optimizer)
        return False

    def finish_schedule(self, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
        """Jump to the target K now if the schedule has not reached it (e.g. training ended early)."""
        self._check_live("finish_schedule")
        if any(l.K != self.K for l in self.layers.values()):
            self.project(self.K, optimizer)

    def check(self) -> None:
        """Raise NotPpsError unless every pruned layer's weights are PPS(P, K) with exactly its recorded table."""
        for layer in self.layers.values():
            w = layer.module.weight.detach().cpu().numpy()
            allowed = pps.kernel_mask(w.shape, layer.masks)
            outside = (w != 0) & ~allowed
            if outside.any():
                o, i, ky, kx = (int(v) for v in np.argwhere(outside)[0])
                raise pps.NotPpsError(f"{layer.name} (weight shape {list(w.shape)}): weight (o={o}, i={i}, "
                                      f"tap {ky * 3 + kx}) = {w[o, i, ky, kx]!r} is outside pattern "
                                      f"{(o + i) % self.P} = taps {pps.taps_of(layer.masks[(o + i) % self.P])}")

    @torch.no_grad()
    def remove(self) -> None:
        """Bake the masks into plain `weight` parameters (pruned weights stay exactly zero) and drop the
        parametrizations, in place. Completes the schedule first."""
        self._check_live("remove")
        self.finish_schedule()
        for layer in self.layers.values():
            parametrize.remove_parametrizations(layer.module, "weight", leave_parametrized=True)
        self.removed = True
        self.check()

    def report(self) -> str:
        """A per-layer table: name, weight shape, PPS or dense, L2 energy kept."""
        lines = [f"{'layer':<24} {'weight shape':<18} {'structure':<12} {'energy kept':>11}"]
        names = list(self.layers) + list(self.dense)
        for n in names:
            if n in self.layers:
                l = self.layers[n]
                lines.append(f"{n:<24} {str(list(l.shape)):<18} {f'PPS({l.P},{l.K})':<12} "
                             f"{100 * l.energy_kept:>10.2f}%")
            else:
                lines.append(f"{n:<24} {'':<18} {'dense':<12} {'':>11}  ({self.dense[n]})")
        return "\n".join(lines)


def prune_pps(model: nn.Module, P: int = 8, K: int = 4, first_layer_dense: bool = False,
              skip: Iterable[str] = (), schedule: Optional[Schedule] = None) -> PruneState:
    """Project every eligible 3x3 conv (groups 1) of `model` onto PPS(P, K) in place and register masks.

    first_layer_dense: keep the first Conv2d (in module registration order, the forward order of Sequential-style
        models) dense; it has few input channels and costs little.
    skip: module names (as in `model.named_modules()`) to keep dense.
    schedule: [(optimizer step, K), ...] starting at step 0 and ending at K, e.g. `gradual_schedule(4, 100)`;
        the first K is applied now, the rest by `state.step()`.
    Convs that are not 3x3 / grouped stay dense (listed in `state.dense` with the reason).
    """
    if not 1 <= P <= pps.MAX_P or not 1 <= K <= pps.TAPS:
        raise pps.PpsSpecError(f"prune_pps: PPS({P}, {K}) is out of range: P must be in 1..{pps.MAX_P}, "
                               f"K in 1..{pps.TAPS}")
    sched = check_schedule(schedule if schedule is not None else [(0, K)], K)
    skip = set(skip)
    convs = _conv_layers(model)
    known = {n for n, _ in model.named_modules()}
    unknown = sorted(skip - known)
    if unknown:
        raise PpsShapeError(f"prune_pps: skip names {unknown} are not modules of the model; conv layers are "
                            f"{[n for n, _ in convs]}")
    layers: Dict[str, PrunedLayer] = {}
    dense: Dict[str, str] = {}
    for idx, (name, conv) in enumerate(convs):
        if parametrize.is_parametrized(conv, "weight"):
            raise PpsShapeError(f"prune_pps: {name} already has a weight parametrization (pruned twice?); "
                                "call state.remove() first or prune a fresh model")
        if idx == 0 and first_layer_dense:
            dense[name] = "first layer kept dense"
            continue
        if name in skip:
            dense[name] = "skipped by request"
            continue
        try:
            pps.check_eligible(tuple(conv.weight.shape), conv.groups, name)
        except PpsShapeError as e:
            dense[name] = str(e).split(": ", 1)[-1]
            continue
        mask = torch.ones_like(conv.weight, requires_grad=False)
        parametrize.register_parametrization(conv, "weight", _PpsMask(mask))
        layers[name] = PrunedLayer(name, conv, P, pps.TAPS, [(1 << pps.TAPS) - 1] * P, 1.0)
    if not layers:
        raise PpsShapeError(f"prune_pps: no conv layer to prune; every conv stays dense: {dense or 'no Conv2d'}")
    state = PruneState(P, K, layers, dense, sched)
    state.project(sched[0][1])
    return state


# ------------------------------------------------------------------------------------------------------- export
@contextlib.contextmanager
def _baked(model: nn.Module):
    """Temporarily bake every PPS parametrization of `model` into its plain weight, in eval mode; restore after.

    Not a deep copy: torch's remove_parametrizations deletes the `weight` property from the parametrized class,
    which a deep copy shares with the original, and that would break the original model. The Parameter objects
    are kept (an optimizer holding them keeps working), and the same mask modules are registered again.
    """
    taken = []
    for mod in model.modules():
        if parametrize.is_parametrized(mod, "weight") and isinstance(mod.parametrizations.weight[0], _PpsMask):
            taken.append((mod, mod.parametrizations.weight[0]))
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
        for mod, mask in taken:
            parametrize.register_parametrization(mod, "weight", mask)


def export_onnx(model: nn.Module, path: str, input_shape: Sequence[int], opset: int = 17,
                keep_batchnorm: bool = False) -> Dict[str, pps.PpsInfo]:
    """Write `model` (pruned or not; the model is left as it was, masks included) to ONNX for `sps-pynq compile`.

    input_shape: (C, H, W) or (N, C, H, W); the batch dimension is exported as dynamic.
    Masks are baked into the weights, in eval mode (BatchNorm uses running statistics). The exporter folds BN into
    the convs unless keep_batchnorm=True (then the compiler folds it); either fold scales each output channel,
    which keeps zeros zero, so the tables survive. Returns {ONNX Conv node name: PpsInfo}
    of the PPS structure the compiler will detect in each 3x3 conv (dense ones included, as K=9 or less).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise PpsShapeError(f"export_onnx: input_shape must be (C, H, W) or (N, C, H, W), got {list(input_shape)}")
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    device = next(iter(model.parameters())).device
    x = torch.zeros(shape, dtype=torch.float32, device=device)
    with _baked(model) as m, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)    # the TorchScript exporter is the one we want
        torch.onnx.export(m, (x,), path, input_names=["input"], output_names=["output"], opset_version=opset,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False,
                          do_constant_folding=not keep_batchnorm, training=torch.onnx.TrainingMode.EVAL)
    return detect_onnx(path)


def detect_onnx(path: str, P: Optional[int] = None) -> Dict[str, pps.PpsInfo]:
    """{Conv node name: PpsInfo} for every 3x3, groups-1 Conv whose weight is an initializer in the ONNX file."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    inits = {t.name: t for t in g.initializer}
    found: Dict[str, pps.PpsInfo] = {}
    for i, node in enumerate(g.node):
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        w = numpy_helper.to_array(inits[node.input[1]])
        name = node.name or f"Conv_{i}"
        try:
            pps.check_eligible(w.shape, groups, name)
        except PpsShapeError:
            continue
        found[name] = pps.detect(w, name=name, P=P)
    return found
