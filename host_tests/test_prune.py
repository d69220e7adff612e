"""PPS pruning in torch: masks hold under optimizers, schedules re-project, export keeps the detected tables."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sps_pynq import pps  # noqa: E402
from sps_pynq.errors import NotPpsError, PpsShapeError  # noqa: E402
from sps_pynq.prune import (PruneState, check_schedule, detect_onnx, export_onnx, gradual_schedule,  # noqa: E402
                            prune_pps, restore_pps)


def tiny_net(seed=0, bn=True):
    """Conv3x3(1->8) BN ReLU, Conv3x3(8->12) ReLU, Conv1x1(12->6), grouped 3x3, pool, FC: every kind of layer."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8) if bn else nn.Identity(), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
        nn.Conv2d(12, 6, 1), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 10))


def batch(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def assert_pps(state: PruneState):
    """Every pruned layer's effective and underlying weights are zero outside its table; the table is PPS(P, K)."""
    for layer in state.layers.values():
        w = layer.module.weight.detach().numpy()
        allowed = pps.kernel_mask(w.shape, layer.masks)
        assert not np.any(w[~allowed]), f"{layer.name}: pruned weights became nonzero"
        pps.check_table(layer.masks, layer.K, layer.name)
        if not state.removed:
            orig = layer.module.parametrizations.weight.original.detach().numpy()
            assert not np.any(orig[~allowed]), f"{layer.name}: underlying original revived"


def test_prune_selects_eligible_layers_and_matches_numpy_projection():
    model = tiny_net()
    dense_w = {n: m.weight.detach().numpy().copy() for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    state = prune_pps(model, P=8, K=4)
    assert list(state.layers) == ["0", "3"]
    assert set(state.dense) == {"5", "7"}                   # 1x1 and grouped stay dense
    assert "3x3" in state.dense["5"] and "groups" in state.dense["7"]
    for name, layer in state.layers.items():
        ref = pps.project(dense_w[name], 8, 4, name)
        assert layer.masks == ref.masks
        np.testing.assert_array_equal(layer.module.weight.detach().numpy(), ref.weights)
        assert layer.energy_kept == pytest.approx(ref.energy_kept)
        assert pps.detect(layer.module.weight.detach().numpy(), P=8, K=4).masks == ref.masks
    assert "PPS(8,4)" in state.report() and "dense" in state.report()


def test_first_layer_dense_and_skip():
    state = prune_pps(tiny_net(), 8, 4, first_layer_dense=True)
    assert list(state.layers) == ["3"] and state.dense["0"] == "first layer kept dense"
    state = prune_pps(tiny_net(), 8, 4, skip=["3"])
    assert list(state.layers) == ["0"]
    with pytest.raises(PpsShapeError, match="not modules"):
        prune_pps(tiny_net(), 8, 4, skip=["nope"])
    with pytest.raises(PpsShapeError, match="no conv layer"):
        prune_pps(tiny_net(), 8, 4, skip=["0", "3"])
    with pytest.raises(pps.PpsSpecError):
        prune_pps(tiny_net(), 8, 10)
    model = tiny_net()
    prune_pps(model, 8, 4)
    with pytest.raises(PpsShapeError, match="already"):
        prune_pps(model, 8, 4)


OPTIMIZERS = {
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("optimizer_before_prune", [False, True])
def test_masks_survive_optimizer_steps(opt_name, optimizer_before_prune):
    model = tiny_net()
    if optimizer_before_prune:
        # The optimizer holds the Parameter objects from before pruning; parametrize keeps the same objects.
        opt = OPTIMIZERS[opt_name](model.parameters())
        x, y = batch(1)
        F.cross_entropy(model(x), y).backward()
        opt.step()                                   # momentum / moments now nonzero everywhere
        opt.zero_grad()
    state = prune_pps(model, 8, 3)
    if not optimizer_before_prune:
        opt = OPTIMIZERS[opt_name](model.parameters())
    before = {n: l.module.weight.detach().clone() for n, l in state.layers.items()}
    for s in range(6):
        x, y = batch(s)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        # Between opt.step() and state.step(), the effective weight is already masked.
        for layer in state.layers.values():
            w = layer.module.weight.detach().numpy()
            assert not np.any(w[~pps.kernel_mask(w.shape, layer.masks)])
        state.step(opt)
        assert_pps(state)
    for n, l in state.layers.items():
        assert not torch.equal(before[n], l.module.weight.detach()), "training did not move the kept weights"
    state.remove()
    assert state.removed
    assert_pps(state)
    assert isinstance(model[3].weight, nn.Parameter)
    # The baked model still trains; kept zeros are then the user's business, but remove() left them exact.
    assert not any("parametrizations" in n for n, _ in model.named_parameters())


def test_schedule_steps_K_down_with_new_tables():
    model = tiny_net()
    sched = gradual_schedule(K=4, steps_per_stage=2, K_start=6)
    assert sched == [(0, 6), (2, 5), (4, 4)]
    state = prune_pps(model, 8, 4, schedule=sched)
    assert all(l.K == 6 for l in state.layers.values())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    reprojected = []
    for s in range(6):
        x, y = batch(s)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        reprojected.append(state.step(opt))
        assert all(l.K == state.current_K for l in state.layers.values())
        assert_pps(state)
        # momentum state is zero wherever the weights are pruned
        for l in state.layers.values():
            orig = l.module.parametrizations.weight.original
            buf = opt.state[orig]["momentum_buffer"].numpy()
            assert not np.any(buf[~pps.kernel_mask(buf.shape, l.masks)])
    assert reprojected == [False, True, False, True, False, False]
    assert state.history == [(0, 6), (2, 5), (4, 4)]
    assert all(l.K == 4 for l in state.layers.values())


def test_finish_schedule_and_bad_schedules():
    state = prune_pps(tiny_net(), 8, 4, schedule=[(0, 9), (100, 4)])
    assert all(l.masks == [0x1FF] * 8 for l in state.layers.values())
    state.remove()                                   # training stopped early: remove() completes the schedule
    assert all(l.K == 4 for l in state.layers.values())
    assert_pps(state)
    with pytest.raises(RuntimeError, match="removed"):
        state.step()
    for bad in ([(1, 4)], [(0, 6), (0, 4)], [(0, 6), (5, 5)], [(0, 10), (3, 4)], []):
        with pytest.raises(pps.PpsSpecError):
            check_schedule(bad, 4)


def test_check_names_a_revived_weight():
    model = tiny_net()
    state = prune_pps(model, 8, 4)
    state.remove()
    w = model[3].weight
    allowed = pps.kernel_mask(w.shape, state.layers["3"].masks)
    o, i, ky, kx = np.argwhere(~allowed)[0]
    with torch.no_grad():
        w[o, i, ky, kx] = 1.0
    with pytest.raises(NotPpsError, match=r"3 \(weight shape \[12, 8, 3, 3\]\)"):
        state.check()


def test_projection_is_deterministic_with_seed():
    outs = []
    for _ in range(2):
        model = tiny_net(seed=3)
        prune_pps(model, 8, 2)
        model.eval()
        x, _ = batch(7)
        outs.append(model(x).detach().numpy())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_export_onnx_keeps_tables_through_bn_folding(tmp_path):
    pytest.importorskip("onnx")
    import onnxruntime as ort
    model = tiny_net()
    state = prune_pps(model, 8, 4)
    # Give BN non-trivial statistics so a fold would really rescale channels.
    model.train()
    with torch.no_grad():
        model(batch(0, 64)[0] * 3)
    model.eval()
    path = str(tmp_path / "pruned.onnx")
    found = export_onnx(model, path, (1, 8, 8))
    import onnx
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert "BatchNormalization" not in ops, "expected the exporter to fold BN into the conv (what this test covers)"
    # The model itself keeps its masks and training mode, and keeps training under them.
    assert model[0].parametrizations.weight[0] is state.layers["0"].module.parametrizations.weight[0]
    model.train()
    # Exactly the two pruned convs are eligible (1x1 and grouped are not); in graph order each is detected with
    # exactly its table, with P=8 found by detection itself (least K, then least P) and when P=8 is required.
    assert [info.masks for info in found.values()] == [state.layers["0"].masks, state.layers["3"].masks]
    assert [(info.P, info.K) for info in found.values()] == [(8, 4), (8, 4)]
    assert [i.masks for i in detect_onnx(path, P=8).values()] == [i.masks for i in found.values()]
    # The exported model computes what the torch model computes.
    x, _ = batch(5)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x.numpy()})[0]
    model.eval()
    np.testing.assert_allclose(y, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for s in range(3):
        opt.zero_grad()
        F.cross_entropy(model(batch(s)[0]), batch(s)[1]).backward()
        opt.step()
        state.step(opt)
    assert_pps(state)


def compilable_net(seed=0):
    """What the compiler lowers: 3x3 convs (one with BN), a 1x1 conv, ReLU, flatten + FC."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(8 * 64, 10))
    m.train()
    with torch.no_grad():
        m(torch.rand(32, 1, 8, 8) * 3)        # non-trivial BN statistics, so folding rescales channels
    return m


def conv_descriptors(program):
    from sps_pynq.hw.descriptor import Op
    return [d for d in program.descriptors() if d.op == Op.CONV]


@pytest.mark.parametrize("keep_batchnorm", [False, True])
def test_export_then_pack_keeps_the_tables(tmp_path, keep_batchnorm):
    compiler = pytest.importorskip("sps_pynq.compiler")
    model = compilable_net()
    state = prune_pps(model, 8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for s in range(3):                         # fine-tuned weights, not just projected ones
        opt.zero_grad()
        F.cross_entropy(model(batch(s)[0]), batch(s)[1]).backward()
        opt.step()
        state.step(opt)
    state.remove()
    model.eval()
    path = str(tmp_path / "pruned.onnx")
    export_onnx(model, path, (1, 8, 8), keep_batchnorm=keep_batchnorm)
    import onnx
    assert ("BatchNormalization" in [n.op_type for n in onnx.load(path).graph.node]) == keep_batchnorm
    calib = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    want = [state.layers["0"], state.layers["3"]]
    # Asked for 8x2, the compiler must still keep the detected 8x4 tables: no re-projection of pruned weights.
    for spec in [(8, 4), (8, 2)]:
        _, layers, _ = compiler.import_and_lower(path, pps=spec, fill_rows=False)
        convs = [l for l in layers if l.masks]
        assert [l.pps_how for l in convs] == ["detected", "detected"]
        program = compiler.compile_model(path, pps=spec, fill_rows=False, calib=calib)
        descs = [d for d in conv_descriptors(program) if d.pps]
        assert len(descs) == 2
        for d, layer in zip(descs, want):
            assert (d.out_c, d.in_c, d.nnz) == (layer.shape[0], layer.shape[1], 4)
            np.testing.assert_array_equal(pps.kernel_mask((d.out_c, d.in_c, 3, 3), d.pattern_masks),
                                          pps.kernel_mask(layer.shape, layer.masks))


def test_cli_prune_projects_reports_and_is_detected(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    from sps_pynq.cli import main
    dense_path, out_path = str(tmp_path / "dense.onnx"), str(tmp_path / "pruned.onnx")
    export_onnx(compilable_net().eval(), dense_path, (1, 8, 8))
    assert main(["prune", dense_path, "-o", out_path, "--pps", "8x3"]) == 0
    text = capsys.readouterr().out
    lines = [l for l in text.splitlines() if "PPS(8,3) projected" in l]
    assert len(lines) == 2, text
    energies = [float(l.split("%")[0].split()[-1]) for l in lines]
    assert all(0 < e < 100 for e in energies)
    assert "dense (not 3x3)" in text and "fc" in text
    before = {t.name: numpy_helper.to_array(t) for t in onnx.load(dense_path).graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in onnx.load(out_path).graph.initializer}
    found = detect_onnx(out_path, P=8)
    assert [(i.P, i.K) for i in found.values()] == [(8, 3), (8, 3)]
    g = onnx.load(out_path).graph
    for node in g.node:
        if node.name in found:
            w_name = node.input[1]
            keep = pps.kernel_mask(after[w_name].shape, found[node.name].masks)
            # projection only zeroes weights, never changes a kept one
            np.testing.assert_array_equal(after[w_name], np.where(keep, before[w_name], 0))
    # A second pass finds the tables already there and keeps them.
    assert main(["prune", out_path, "-o", str(tmp_path / "again.onnx"), "--pps", "8x3", "--first-layer-dense"]) == 0
    text = capsys.readouterr().out
    assert "dense (first layer)" in text and "PPS(8,3) detected" in text and "100.00%" in text
    # User errors: a clear message and exit code 2, no traceback.
    assert main(["prune", str(tmp_path / "missing.onnx"), "-o", out_path]) == 2
    assert "missing.onnx" in capsys.readouterr().err


def _train(model, state, opt, steps):
    for s in steps:
        x, y = batch(s)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        state.step(opt)


def test_checkpoint_restores_tables_masks_and_the_schedule_position(tmp_path):
    """A run interrupted after 3 steps and resumed from a checkpoint (model, PruneState, optimizer) ends exactly
    where the uninterrupted run ends, across a K change of the schedule; the state survives JSON too."""
    import json
    sched = [(0, 5), (4, 3)]
    model = tiny_net()
    state = prune_pps(model, 8, 3, schedule=sched)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    _train(model, state, opt, range(3))
    torch.save({"model": model.state_dict(), "pps": state.state_dict(), "opt": opt.state_dict()},
               tmp_path / "ckpt.pt")
    _train(model, state, opt, range(3, 7))                       # uninterrupted: K 5 -> 3 at step 4

    ckpt = torch.load(tmp_path / "ckpt.pt")
    fresh = tiny_net(seed=9)                                      # other weights: all come from the checkpoint
    restored = restore_pps(fresh, json.loads(json.dumps(ckpt["pps"])))
    fresh.load_state_dict(ckpt["model"])
    restored.check()
    assert restored.steps == 3 and restored.current_K == 5 and restored.history == [(0, 5)]
    assert {n: l["masks"] for n, l in ckpt["pps"]["layers"].items()} == restored.tables()
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.05, momentum=0.9)
    opt2.load_state_dict(ckpt["opt"])
    _train(fresh, restored, opt2, range(3, 7))
    assert restored.tables() == state.tables() and restored.history == state.history == [(0, 5), (4, 3)]
    for (k, a), (k2, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    # removed states restore as removed: plain weights, checked against the tables
    state.remove()
    baked = tiny_net(seed=9)
    again = restore_pps(baked, state.state_dict())
    baked.load_state_dict(model.state_dict())
    assert again.removed and not any("parametrizations" in n for n, _ in baked.named_parameters())
    again.check()


def test_restore_refuses_what_does_not_fit():
    model = tiny_net()
    sd = prune_pps(model, 8, 4).state_dict()
    with pytest.raises(PpsShapeError, match=r"0 has weight shape \[4, 1, 3, 3\], the checkpoint \[8, 1, 3, 3\]"):
        restore_pps(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Identity(), nn.ReLU(), nn.Conv2d(4, 12, 3)), sd)
    with pytest.raises(PpsShapeError, match="the checkpoint prunes '3', but the model has no such module"):
        restore_pps(nn.Sequential(nn.Conv2d(1, 8, 3)), sd)
    with pytest.raises(PpsShapeError, match="not a PruneState.state_dict"):
        restore_pps(tiny_net(), {"P": 8})
    with pytest.raises(PpsShapeError, match="already has a weight parametrization"):
        restore_pps(model, sd)
    bad = dict(sd, layers={**sd["layers"], "3": dict(sd["layers"]["3"], masks=[0x1FF] * 8)})
    with pytest.raises(NotPpsError, match="K=4"):
        restore_pps(tiny_net(), bad)
    # a model state from another table than the PruneState's: check() names the layer
    other = tiny_net(seed=5)
    sd_other = prune_pps(other, 8, 4).state_dict()
    fresh = tiny_net()
    state = restore_pps(fresh, sd_other)
    fresh.load_state_dict(model.state_dict())                     # weights and masks of the first model's tables
    with pytest.raises(NotPpsError, match="mask buffer does not match the table"):
        state.check()
