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

Under torch.distributed (DDP): prune before wrapping the model (`prune_pps(model)`, then `DDP(model)`). Whenever
torch.distributed is initialized with more than one rank, every projection (the first one in `prune_pps`, each K of
a schedule, `project()`) is chosen once, on the group's first rank, and broadcast: the other ranks take its tables
(and energies) and build their masks from them, so tables and masks are identical on every rank by construction,
not by hoping that float arithmetic agrees. Before that broadcast the ranks check (all-reduce of min and max) that
they agree on the step, the K and the layers, and all raise `DistributedPruneError` together if not. Between
projections `step()` only multiplies each rank's weights by its (identical) masks, which keeps ranks that DDP
keeps identical identical. `check_synchronized()` compares tables, masks and weights across ranks (sha256),
`state_dict()` / `restore_pps()` carry the tables and the schedule's position through a checkpoint.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from . import pps
from .errors import PpsShapeError, SpsError

Schedule = Sequence[Tuple[int, int]]     # [(optimizer step, K), ...], first step 0, steps increasing
STATE_VERSION = 1                          # of PruneState.state_dict()


class DistributedPruneError(SpsError):
    """Ranks of a torch.distributed group disagree about the pruning (step, K, layers, tables, masks or weights),
    or a model was wrapped (DDP, FSDP) before it was pruned."""


# ------------------------------------------------------------------------------------------------- distributed
def _group(process_group):
    """The process group to keep the tables identical over, or None when there is nothing to synchronize
    (torch.distributed missing, not initialized, or one rank)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        if process_group is not None:
            raise DistributedPruneError("prune_pps: process_group given but torch.distributed is not initialized; "
                                        "call torch.distributed.init_process_group first")
        return None
    group = process_group if process_group is not None else dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def _comm_device(group, like: torch.Tensor) -> torch.device:
    """NCCL moves only CUDA tensors; gloo (and the rest) CPU ones."""
    return like.device if torch.distributed.get_backend(group) == "nccl" else torch.device("cpu")


def _agree(group, values: Sequence[int], what: Sequence[str], device: torch.device, context: str) -> None:
    """Every rank passes its `values`; all ranks raise DistributedPruneError together unless they are equal."""
    dist = torch.distributed
    lo = torch.tensor([int(v) for v in values], dtype=torch.int64, device=device)
    hi = lo.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
    differ = [f"{w} (this rank {v}, ranks hold {int(a)}..{int(b)})"
              for w, v, a, b in zip(what, values, lo.tolist(), hi.tolist()) if a != b]
    if differ:
        raise DistributedPruneError(f"{context}: rank {dist.get_rank()} of {dist.get_world_size(group)} disagrees "
                                    f"with the others on {'; '.join(differ)}. Every rank must prune the same "
                                    f"model and call state.step() / project() equally often")


def _digest(*arrays) -> int:
    """A 62-bit fingerprint of the arrays' bytes (exact: equal arrays, equal fingerprints)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 2


def _wrapped(model: nn.Module) -> Optional[str]:
    """The wrapper's name when `model` is a DDP / FSDP wrapper (prune the inner model before wrapping)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return "DistributedDataParallel"
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        return None
    return "FullyShardedDataParallel" if isinstance(model, FullyShardedDataParallel) else None


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
    process_group: object = None                  # torch.distributed group the tables are kept identical over
                                                  # (None: the default group when initialized)

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
        group = _group(self.process_group)
        chosen = None                      # [(masks, energy kept)] per layer, computed where the choice is made
        if group is None or torch.distributed.get_rank(group) == 0:
            chosen = []
            for layer in self.layers.values():
                proj = pps.project(layer.module.weight.detach().cpu().numpy(), self.P, K, name=layer.name)
                chosen.append((list(proj.masks), proj.energy_kept))
        if group is not None:
            chosen = self._broadcast_choice(group, K, chosen)
        for layer, (masks, energy) in zip(self.layers.values(), chosen):
            self._set_table(layer, K, masks, energy)
        self.history.append((self.steps, K))
        self._remask(optimizer)

    def _set_table(self, layer: PrunedLayer, K: int, masks: List[int], energy: float) -> None:
        mask = torch.from_numpy(pps.kernel_mask(layer.shape, masks))
        buf = _mask_module(layer.module).mask
        buf.copy_(mask.to(device=buf.device, dtype=buf.dtype))
        layer.K, layer.masks, layer.energy_kept = K, list(masks), float(energy)

    def _broadcast_choice(self, group, K: int, chosen) -> List[Tuple[List[int], float]]:
        """The first rank's tables and energies, on every rank, after checking that the ranks agree on what is
        being projected (step, K, layer count and shapes)."""
        dist = torch.distributed
        first = next(iter(self.layers.values())).module.weight
        device = _comm_device(group, first)
        shapes = _digest(np.array([[len(n)] + list(l.shape) for n, l in self.layers.items()], dtype=np.int64),
                         np.frombuffer("\n".join(self.layers).encode(), dtype=np.uint8))
        _agree(group, [self.steps, K, self.P, len(self.layers), shapes],
               ["optimizer step", "K", "P", "number of pruned layers", "layer names and shapes"], device,
               f"PruneState.project(K={K}) at step {self.steps}")
        n = len(self.layers)
        buf = torch.zeros(n * self.P + n, dtype=torch.float64, device=device)    # masks (< 512) are exact
        if chosen is not None:
            buf.copy_(torch.tensor([m for masks, _ in chosen for m in masks] + [e for _, e in chosen],
                                   dtype=torch.float64))
        dist.broadcast(buf, src=dist.get_global_rank(group, 0), group=group)
        values = buf.cpu().tolist()
        return [([int(m) for m in values[i * self.P:(i + 1) * self.P]], values[n * self.P + i]) for i in range(n)]

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
            if not self.removed:
                held = _mask_module(layer.module).mask.detach().cpu().numpy() != 0
                if not np.array_equal(held, allowed):
                    o, i, ky, kx = (int(v) for v in np.argwhere(held != allowed)[0])
                    raise pps.NotPpsError(f"{layer.name} (weight shape {list(w.shape)}): the mask buffer does not "
                                          f"match the table at (o={o}, i={i}, tap {ky * 3 + kx}); was a model "
                                          f"state loaded that belongs to another table? (restore_pps, then "
                                          f"load_state_dict, from the same checkpoint)")
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

    def check_synchronized(self) -> None:
        """Under torch.distributed: raise DistributedPruneError on every rank unless all ranks hold the same step,
        K, tables, mask buffers and pruned weights (compared exactly, by sha256 of their bytes). A collective:
        every rank must call it. Without a process group it does nothing."""
        group = _group(self.process_group)
        if group is None:
            return
        values, what = [self.steps, int(self.removed)], ["optimizer step", "removed"]
        for layer in self.layers.values():
            w = layer.module.weight.detach().cpu().numpy()
            values += [layer.K, _digest(np.array(layer.masks, dtype=np.int64)), _digest(w)]
            what += [f"{layer.name}: K", f"{layer.name}: pattern table", f"{layer.name}: weights"]
            if not self.removed:
                values.append(_digest(_mask_module(layer.module).mask.detach().cpu().numpy()))
                what.append(f"{layer.name}: mask buffer")
        first = next(iter(self.layers.values())).module.weight
        _agree(group, [len(values)] + values, ["number of pruned layers"] + what, _comm_device(group, first),
               "PruneState.check_synchronized()")

    def state_dict(self) -> dict:
        """What a checkpoint needs to restore the pruning with `restore_pps` (plain Python values: torch.save or
        JSON): P, K, the schedule and how far it got, and per layer its K, table and energy kept. The weights and
        mask buffers are in the model's own state_dict."""
        return {"version": STATE_VERSION, "P": self.P, "K": self.K, "schedule": [list(e) for e in self.schedule],
                "steps": self.steps, "removed": self.removed, "history": [list(e) for e in self.history],
                "dense": dict(self.dense),
                "layers": {n: {"shape": list(l.shape), "K": l.K, "masks": list(l.masks),
                               "energy_kept": l.energy_kept} for n, l in self.layers.items()}}

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
              skip: Iterable[str] = (), schedule: Optional[Schedule] = None,
              process_group=None) -> PruneState:
    """Project every eligible 3x3 conv (groups 1) of `model` onto PPS(P, K) in place and register masks.

    first_layer_dense: keep the first Conv2d (in module registration order, the forward order of Sequential-style
        models) dense; it has few input channels and costs little.
    skip: module names (as in `model.named_modules()`) to keep dense.
    schedule: [(optimizer step, K), ...] starting at step 0 and ending at K, e.g. `gradual_schedule(4, 100)`;
        the first K is applied now, the rest by `state.step()`.
    process_group: under torch.distributed, the group whose ranks share the tables (default: the default group
        when one is initialized). Each projection is chosen on its first rank and broadcast; call prune_pps on
        every rank, before wrapping the model in DDP.
    Convs that are not 3x3 / grouped stay dense (listed in `state.dense` with the reason).
    """
    wrapper = _wrapped(model)
    if wrapper:
        raise DistributedPruneError(f"prune_pps: the model is wrapped in {wrapper}; prune the inner model before "
                                    f"wrapping it (state = prune_pps(model, ...); ddp = {wrapper}(model)), since "
                                    f"pruning adds parameters the wrapper would not know of")
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
        _register(conv)
        layers[name] = PrunedLayer(name, conv, P, pps.TAPS, [(1 << pps.TAPS) - 1] * P, 1.0)
    if not layers:
        raise PpsShapeError(f"prune_pps: no conv layer to prune; every conv stays dense: {dense or 'no Conv2d'}")
    state = PruneState(P, K, layers, dense, sched, process_group=process_group)
    state.project(sched[0][1])
    return state


def _register(conv: nn.Conv2d) -> None:
    """weight = original * mask, the mask all ones until a table is set."""
    parametrize.register_parametrization(conv, "weight", _PpsMask(torch.ones_like(conv.weight,
                                                                                requires_grad=False)))


def restore_pps(model: nn.Module, state_dict: dict, process_group=None) -> PruneState:
    """Prune `model` again exactly as `PruneState.state_dict()` recorded: the same layers with the same tables,
    K, schedule and step count; nothing is projected or communicated. Then load the model's weights:

        state = restore_pps(model, ckpt["pps"])      # registers the masks the checkpoint's model state expects
        model.load_state_dict(ckpt["model"])
        state.check()                                # tables, mask buffers and weights agree

    A checkpoint saved on one rank restores on every rank (each reads the same file). A state saved after
    `remove()` gives a removed state: the weights are plain and only `check()` applies.
    """
    wrapper = _wrapped(model)
    if wrapper:
        raise DistributedPruneError(f"restore_pps: the model is wrapped in {wrapper}; restore into the inner model "
                                    f"before wrapping it")
    try:
        version = state_dict["version"]
        P, K, entries = int(state_dict["P"]), int(state_dict["K"]), state_dict["layers"]
    except (KeyError, TypeError) as e:
        raise PpsShapeError(f"restore_pps: not a PruneState.state_dict() (missing {e})") from None
    if version != STATE_VERSION:
        raise PpsShapeError(f"restore_pps: state version {version!r}, this sps_pynq reads {STATE_VERSION}")
    sched = check_schedule(state_dict.get("schedule") or [(0, K)], K)
    modules = dict(model.named_modules())
    removed = bool(state_dict.get("removed", False))
    layers: Dict[str, PrunedLayer] = {}
    for name, e in entries.items():
        conv = modules.get(name)
        if not isinstance(conv, nn.Conv2d):
            raise PpsShapeError(f"restore_pps: the checkpoint prunes {name!r}, but the model has "
                                f"{'no such module' if conv is None else type(conv).__name__ + ' there'}; its "
                                f"convs are {[n for n, _ in _conv_layers(model)]}")
        if parametrize.is_parametrized(conv, "weight"):
            raise PpsShapeError(f"restore_pps: {name} already has a weight parametrization (pruned twice?); "
                                f"restore into a fresh model")
        if list(conv.weight.shape) != list(e["shape"]):
            raise PpsShapeError(f"restore_pps: {name} has weight shape {list(conv.weight.shape)}, the checkpoint "
                                f"{list(e['shape'])}")
        masks = [int(m) for m in e["masks"]]
        if len(masks) != P:
            raise PpsShapeError(f"restore_pps: {name} has a table of {len(masks)} patterns, P is {P}")
        pps.check_table(masks, int(e["K"]), name)
        layers[name] = PrunedLayer(name, conv, P, int(e["K"]), masks, float(e["energy_kept"]))
    if not layers:
        raise PpsShapeError("restore_pps: the state names no pruned layer")
    if not removed:
        for layer in layers.values():
            _register(layer.module)
    state = PruneState(P, K, layers, dict(state_dict.get("dense", {})), sched, steps=int(state_dict["steps"]),
                       removed=removed, history=[tuple(h) for h in state_dict.get("history", [])],
                       process_group=process_group)
    if not removed:
        with torch.no_grad():
            for layer in layers.values():
                state._set_table(layer, layer.K, layer.masks, layer.energy_kept)
        state._remask(None)
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
