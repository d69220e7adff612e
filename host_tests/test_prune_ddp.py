"""PPS fine-tuning under torch.distributed: 2-process DDP on CPU (gloo on loopback, torch.multiprocessing spawn).

The ranks start from DIFFERENT weights on purpose: the tables must come from rank 0 (chosen once, broadcast), not
from each rank's own projection, and DDP then broadcasts rank 0's weights. After several steps and a K-schedule
change (a re-projection with new tables mid-run) every rank must hold identical tables, masks and weights, equal to
a single-process run on the same global batch: tables and masks exactly, weights within float tolerance (DDP
averages the ranks' gradients in another order of summation). The net has no BatchNorm: under DDP each rank
normalizes with its own half of the batch (SyncBatchNorm, which would not, runs on GPUs only), which is the usual
DDP behaviour and not what is tested here.

The worker functions are at module level so that the spawned processes can import them.
"""
import datetime
import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from sps_pynq import pps  # noqa: E402
from sps_pynq.prune import DistributedPruneError, prune_pps, restore_pps  # noqa: E402

WORLD = 2
STEPS = 6
SCHEDULE = [(0, 4), (3, 3)]          # K 4, then a re-projection to K 3 with new tables after the third step
GLOBAL_BATCH = 16                    # each rank takes its half
TIMEOUT = datetime.timedelta(seconds=120)   # a collective waiting longer fails instead of hanging the suite


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 8, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def global_batch(step: int):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.rand(GLOBAL_BATCH, 1, 10, 10, generator=g), torch.randint(0, 10, (GLOBAL_BATCH,), generator=g)


def make_optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)


def fine_tune(forward, state, opt, rank: int = 0, world: int = 1) -> None:
    for s in range(STEPS):
        x, y = global_batch(s)
        x, y = x.chunk(world)[rank], y.chunk(world)[rank]
        loss = F.cross_entropy(forward(x), y)        # the local mean; DDP averages the gradients over the ranks
        opt.zero_grad()
        loss.backward()
        opt.step()
        state.step(opt)


def snapshot(model: nn.Module, state) -> dict:
    """Tables, K, energies, history, and every tensor of the model (weights, mask buffers) as numpy."""
    return {"tables": state.tables(), "K": {n: l.K for n, l in state.layers.items()},
            "energy": {n: l.energy_kept for n, l in state.layers.items()}, "history": list(state.history),
            "steps": state.steps,
            "tensors": {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()},
            "weights": {n: l.module.weight.detach().cpu().numpy().copy() for n, l in state.layers.items()}}


def _init(rank: int, world: int, port: int) -> None:
    torch.set_num_threads(1)                        # two processes on a 2-core machine shared with others
    if "lo" in {name for _, name in socket.if_nameindex()}:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")       # gloo's own connections on the loopback too
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=TIMEOUT)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    _init(rank, world, port)
    try:
        model = small_net(seed=rank)                    # rank 1 starts from other weights than rank 0
        state = prune_pps(model, P=8, K=3, schedule=SCHEDULE)
        first = snapshot(model, state)
        ddp = nn.parallel.DistributedDataParallel(model)   # broadcasts rank 0's parameters and buffers
        opt = make_optimizer(ddp.parameters())
        fine_tune(ddp, state, opt, rank, world)
        state.check_synchronized()
        final = snapshot(model, state)
        # checkpoint on rank 0, restored on every rank into a fresh model with other weights
        path = os.path.join(out, "ckpt.pt")
        if rank == 0:
            torch.save({"model": model.state_dict(), "pps": state.state_dict()}, path)
        dist.barrier()
        fresh = small_net(seed=50 + rank)
        ckpt = torch.load(path, map_location="cpu")
        restored = restore_pps(fresh, ckpt["pps"])
        fresh.load_state_dict(ckpt["model"])
        restored.check()
        restored.check_synchronized()
        torch.save({"first": first, "final": final, "restored": snapshot(fresh, restored)},
                   os.path.join(out, f"rank{rank}.pt"))
        dist.barrier()          # every rank done with the group before rank 0, the store's host, tears it down
    finally:
        dist.destroy_process_group()


def _disagree_worker(rank: int, world: int, port: int, out: str) -> None:
    """Rank 1 asks for another K than rank 0: both must raise DistributedPruneError, neither may hang."""
    _init(rank, world, port)
    try:
        model = small_net(seed=0)
        state = prune_pps(model, P=8, K=4)
        msg = ""
        try:
            state.project(4 if rank == 0 else 2)
        except DistributedPruneError as e:
            msg = str(e)
        with torch.no_grad():                           # weights that differ on one rank: check_synchronized
            if rank == 1:
                model[2].parametrizations.weight.original.mul_(1.5)
        sync = ""
        try:
            state.check_synchronized()
        except DistributedPruneError as e:
            sync = str(e)
        torch.save({"project": msg, "sync": sync}, os.path.join(out, f"rank{rank}.pt"))
        dist.barrier()          # every rank done with the group before rank 0, the store's host, tears it down
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, out) -> list:
    mp.spawn(fn, args=(WORLD, _free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=False) for r in range(WORLD)]


def _assert_same(a: dict, b: dict, exact_weights: bool = True, what: str = "") -> None:
    assert a["tables"] == b["tables"], what
    assert a["K"] == b["K"], what
    assert a["history"] == b["history"] and a["steps"] == b["steps"], what
    assert a["tensors"].keys() == b["tensors"].keys(), what
    for k in a["tensors"]:
        if exact_weights or k.endswith(".mask"):
            np.testing.assert_array_equal(a["tensors"][k], b["tensors"][k], err_msg=f"{what}: {k}")
        else:
            np.testing.assert_allclose(a["tensors"][k], b["tensors"][k], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{what}: {k}")


def test_ddp_two_ranks_keep_tables_masks_weights_identical_and_equal_one_process(tmp_path):
    r0, r1 = _spawn(_ddp_worker, tmp_path)
    # The first projection: rank 1 pruned other weights, yet holds rank 0's tables and energies.
    assert r0["first"]["tables"] == r1["first"]["tables"]
    assert r0["first"]["energy"] == r1["first"]["energy"]
    own = pps.project(small_net(1)[2].weight.detach().numpy(), 8, 4)
    rank0 = pps.project(small_net(0)[2].weight.detach().numpy(), 8, 4)
    assert r1["first"]["tables"]["2"] == rank0.masks != own.masks      # not its own choice
    # After the steps and the K change: identical on both ranks, bit for bit.
    _assert_same(r0["final"], r1["final"], what="rank 0 vs rank 1")
    assert r0["final"]["history"] == [(0, 4), (3, 3)]
    assert set(r0["final"]["K"].values()) == {3} and list(r0["final"]["K"]) == ["0", "2", "5"]
    assert r0["final"]["tables"] != r0["first"]["tables"]
    for name, masks in r0["final"]["tables"].items():
        w = r0["final"]["weights"][name]
        assert not np.any(w[~pps.kernel_mask(w.shape, masks)]), name
    # The same global batch in one process: the same tables, masks within float tolerance of weights.
    model = small_net(seed=0)
    state = prune_pps(model, P=8, K=3, schedule=SCHEDULE)
    fine_tune(model, state, make_optimizer(model.parameters()))
    _assert_same(r0["final"], snapshot(model, state), exact_weights=False, what="DDP vs one process")
    moved = max(float(np.abs(r0["final"]["tensors"][k] - small_net(0).state_dict()[k.replace(
        "parametrizations.weight.original", "weight")].numpy()).max()) for k in r0["final"]["tensors"]
        if k.endswith("original"))
    assert moved > 1e-3, "the fine-tuning did not move the weights"
    # The checkpoint saved on rank 0 restores the same tables, masks, weights and step on every rank.
    for r in (r0, r1):
        _assert_same(r["restored"], r0["final"], what="restored")
        assert r["restored"]["energy"] == r0["final"]["energy"]


def test_ddp_ranks_that_disagree_fail_together(tmp_path):
    r0, r1 = _spawn(_disagree_worker, tmp_path)
    for r in (r0, r1):
        assert "disagrees with the others on K" in r["project"], r["project"]
        assert "2: weights" in r["sync"] and "pattern table" not in r["sync"], r["sync"]


def test_ddp_wrapped_model_is_refused_with_the_fix(tmp_path):
    """In-process, one rank: a model wrapped before pruning is refused (the wrapper would miss the new
    parameters); with one rank nothing is communicated and check_synchronized has nothing to compare."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1, timeout=TIMEOUT)
    try:
        ddp = nn.parallel.DistributedDataParallel(small_net(0))
        with pytest.raises(DistributedPruneError, match=r"prune_pps\(model, ...\); ddp = DistributedDataParallel"):
            prune_pps(ddp, 8, 4)
        state = prune_pps(small_net(0), 8, 4)
        state.check_synchronized()
        assert state.tables()["0"] == pps.project(small_net(0)[0].weight.detach().numpy(), 8, 4).masks
    finally:
        dist.destroy_process_group()


def _recipe() -> str:
    """The torchrun recipe of docs/pruning.md: the python block that starts with '# finetune_ddp.py'."""
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "pruning.md")) as f:
        text = f.read()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    found = [b for b in blocks if b.startswith("# finetune_ddp.py")]
    assert len(found) == 1, "docs/pruning.md should hold one block starting with '# finetune_ddp.py'"
    return found[0]


@pytest.mark.slow
def test_ddp_torchrun_recipe_of_the_docs_runs(tmp_path):
    """The documented recipe, as written, under torchrun with two processes (about 20 s on 2 cores)."""
    import shutil
    import subprocess
    import sys
    (tmp_path / "finetune_ddp.py").write_text(_recipe())
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    cmd = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if "lo" in {name for _, name in socket.if_nameindex()}:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    r = subprocess.run(cmd + ["--standalone", "--nproc_per_node", "2", "finetune_ddp.py"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PPS(8,4)" in r.stdout and "375 steps on 2 ranks" in r.stdout, r.stdout
    acc = float(r.stdout.split("test accuracy ")[1].split()[0])
    assert acc > 80.0, r.stdout
    assert (tmp_path / "mnist_pps.onnx").stat().st_size > 0 and (tmp_path / "ckpt.pt").exists()
