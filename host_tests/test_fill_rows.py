"""fill_rows (compiler/fill_rows.py): merged residue classes give the same outputs bit for bit (ref, sim, rtl),
fewer modelled cycles where classes are small, no change where rows are full, honest MAC counts, the CLI flag."""
import json

import numpy as np
import pytest
from onnx import helper

from sps_pynq import pps
from sps_pynq.backends import rtl_build
from sps_pynq.cli import main
from sps_pynq.compiler import compile_model, import_and_lower
from sps_pynq.compiler.fill_rows import choices, merge_classes, merged_masks, modelled_cycles
from sps_pynq.compiler.testing import make_model
from sps_pynq.hw import cycles
from sps_pynq.hw.config import get_config
from sps_pynq.hw.descriptor import Op
from sps_pynq.runtime.session import Session

pytestmark = pytest.mark.filterwarnings("ignore:no calibration data")
RNG = np.random.default_rng(21)


def net(c=16, side=8):
    """conv3x3(3->c) + relu, conv3x3(c->c) + relu, conv3x3(c->c): the last two PPS-projected."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3", pads=[1, 1, 1, 1])]
    inits = {"w1": RNG.standard_normal((c, 3, 3, 3)), "w2": RNG.standard_normal((c, c, 3, 3)),
             "w3": RNG.standard_normal((c, c, 3, 3))}
    return make_model(nodes, [("x", [1, 3, side, side])], ["y"], inits)


def test_merged_masks_cover_the_classes_they_merge():
    table = [pps.mask_of(t) for t in ([0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8],
                                      [0, 2, 6, 8], [1, 3, 5, 7], [0, 2, 4, 8], [0, 2, 4, 6])]
    assert merged_masks(table, 8) == table
    for p in (4, 2, 1):
        merged = merged_masks(table, p)
        counts = {bin(m).count("1") for m in merged}
        assert len(merged) == p and len(counts) == 1 and 4 <= counts.pop() <= 9
        for q, m in enumerate(table):
            assert merged[q % p] & m == m          # pattern (o + i) mod P lies inside (o + i) mod P'
    assert merged_masks(table, 1) == [0x1ff]
    with pytest.raises(ValueError, match="do not divide"):
        merged_masks(table, 3)


def test_small_classes_merge_and_give_the_same_outputs():
    hw = get_config("zcu104")                      # R = 16: 16 filters at P = 8 fill 2 rows a group
    model = net()
    calib = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
    plain = compile_model(model, hw=hw, pps="8x4", first_layer_dense=True, fill_rows=False, calib=calib)
    filled = compile_model(model, hw=hw, pps="8x4", first_layer_dense=True, fill_rows=True, calib=calib)
    assert filled.metadata["fill_rows"] is True and plain.metadata["fill_rows"] is False
    metas = {m["name"]: m for m in filled.metadata["layers"] if m["op"] == "CONV"}
    descs = {info.name: d for info, d in zip(filled.layers, filled.descriptors())}
    for name in ("conv2", "conv3"):
        m, d = metas[name], descs[name]
        assert (m["P"], m["K"]) == (8, 4)                      # the model's sparsity
        # merged classes, or classes sharing row groups (hw/layout.py): either re-encodes the layer
        assert m["encoded"]["P"] < 8 or m["encoded"]["slot_shift"] is not None
        assert (d.patterns, d.nnz) == (m["encoded"]["P"], m["encoded"]["K"])
        assert d.share == (m["encoded"]["slot_shift"] is not None)
        assert list(d.pattern_masks) == m["encoded"]["masks"]
    assert "encoded" not in metas["conv1"]
    # the same integers out of every backend and both encodings
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with Session(plain, backend="sim") as s:
        want = s.run(x)
    for backend in ("sim", "ref"):
        with Session(filled, backend=backend) as s:
            assert np.array_equal(np.asarray(s.run(x)), np.asarray(want)), backend
    # fewer modelled cycles, the same nonzero MACs (the model's K, not the stored K')
    total = [sum(c.total for c in cycles.program_cycles(p, cycles.ZCU104_DDR)) for p in (plain, filled)]
    assert total[1] < total[0]
    assert filled.conv_macs() == plain.conv_macs()
    with Session(filled, backend="sim") as s:
        s.run(x[:1])
        assert s.stats()["macs"] == plain.conv_macs()[0]


def test_mac_counts_survive_odd_metadata():
    """.spsmodel metadata is untrusted: a mangled `encoded` record or `layers` list leaves the descriptors' counts."""
    hw = get_config("zcu104")
    # 6x6 maps: channel planes of 36 bytes cannot share classes (not whole beats apart), so the classes merge
    program = compile_model(net(side=6), hw=hw, pps="8x4", first_layer_dense=True, fill_rows=True, num_calib=2)
    want = program.layer_macs()
    stored = [d.sparse_macs() for d in program.descriptors()]
    assert want != stored                          # merged layers count the model's K, not K'
    for layers in (5, "x", [5, None], [{"name": "conv2", "K": "four", "encoded": {"K": 9}}],
                   [{"name": "conv2", "K": float("inf"), "encoded": {"K": 9}}], [{"name": "conv2", "encoded": 3}]):
        program.metadata["layers"] = layers
        assert program.layer_macs() == stored, layers
    program.metadata = None
    assert program.layer_macs() == stored


def test_full_rows_keep_their_table():
    hw = get_config("small")                       # R = 2: 16 filters at P = 8 fill every group already
    _, layers, _ = import_and_lower(net(), hw=hw, pps="8x4", first_layer_dense=True, fill_rows=False)
    before = [list(layer.masks) for layer in layers]
    merge_classes(layers, hw)
    assert [list(layer.masks) for layer in layers] == before
    assert all(not layer.pruned_masks for layer in layers)


def test_the_choice_is_the_fastest_modelled_table():
    hw = get_config("zcu104")
    _, layers, _ = import_and_lower(net(), hw=hw, pps="8x4", first_layer_dense=True, fill_rows=False)
    conv2 = next(layer for layer in layers if layer.name == "conv2")
    table = list(conv2.masks)
    plain = min(modelled_cycles(conv2, merged_masks(table, p), hw) for p in (8, 4, 2, 1))
    options = choices(conv2, hw)
    assert {c[0] for c in options} == {8, 4, 2, 1} and any(c[3] is not None for c in options)
    best = min(c[2] for c in options)
    assert best <= plain
    merge_classes(layers, hw)
    assert modelled_cycles(conv2, conv2.masks, hw, conv2.slot_shift) == best
    assert conv2.pruned_masks == (table if len(conv2.masks) < 8 else [])


@pytest.mark.skipif(rtl_build.setup_verilator() is None, reason="verilator not installed")
def test_rtl_runs_merged_classes_bit_exact():
    hw = get_config("small")                       # R = 2: 8 filters at P = 8 fill one row of two
    program = compile_model(net(c=8, side=6), hw=hw, pps="8x4", first_layer_dense=True, fill_rows=True,
                            calib=RNG.standard_normal((2, 3, 6, 6)).astype(np.float32))
    assert any("encoded" in m for m in program.metadata["layers"] if m["op"] == "CONV")
    x = RNG.integers(-128, 128, size=(1,) + program.inputs[0].shape).astype(np.int8)
    with Session(program, backend="sim") as sim:
        want = sim.run_int8(x)
    with Session(program, backend="rtl") as rtl:
        got = rtl.run_int8(x)
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} of {got.size} output bytes differ"


def test_pack_cli_flag(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    src.write_bytes(net().SerializeToString())
    out = tmp_path / "net.spsmodel"
    assert main(["pack", str(src), "-o", str(out), "--first-layer-dense", "--fill-rows", "--num-calib", "2"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["fill_rows"] is True
    convs = [r for r in info["layers"] if r["op"] == Op.CONV.name]
    # 8x8 maps of 16 channels: the 16-filter classes share row groups (one group of 8 slots of 2 rows)
    shared = [r for r in convs if r["mode"] == "pps-shared"]
    assert shared and all(r["P"] == 8 and r["slot_shift"] == 1 and r["row_groups"] == 1 for r in shared)
    assert all(r["sparse_macs"] < r["dense_macs"] for r in convs if r["mode"].startswith("pps-"))


def test_fill_rows_is_the_default_and_no_fill_rows_packs_the_pruned_encoding(tmp_path, capsys):
    """fill_rows is on by default (CompileOptions, compile_model, pack); pack --no-fill-rows turns it off."""
    from sps_pynq.compiler import CompileOptions
    assert CompileOptions().fill_rows is True
    src = tmp_path / "net.onnx"
    src.write_bytes(net().SerializeToString())
    meta = {}
    for flags in ([], ["--no-fill-rows"]):
        out = tmp_path / f"net{len(flags)}.spsmodel"
        assert main(["pack", str(src), "-o", str(out), "--first-layer-dense", "--num-calib", "2"] + flags) == 0
        capsys.readouterr()
        assert main(["inspect", str(out), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        meta[bool(flags)] = info
    assert meta[False]["metadata"]["fill_rows"] is True and meta[True]["metadata"]["fill_rows"] is False
    assert any(r["mode"] == "pps-shared" for r in meta[False]["layers"])
    assert all(r["mode"] in ("dense", "pps") for r in meta[True]["layers"] if r["op"] == Op.CONV.name), \
        [r["mode"] for r in meta[True]["layers"]]
    program = compile_model(net(), pps="8x4", first_layer_dense=True, num_calib=2)
    assert program.metadata["fill_rows"] is True


def test_idle_rows_script_compares_the_designs():
    """scripts/idle_rows.py: the four designs, merged classes between the core as it is and the full-rows bound."""
    import re
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "scripts" / "idle_rows.py"
    out = subprocess.run([sys.executable, str(script), "--network", "resnet20"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = (re.match(r"(now|fill_rows|2 pixel sets|full rows)\s+([\d,]+)\s", line) for line in out.stdout.splitlines())
    cycles_of = {m[1]: int(m[2].replace(",", "")) for m in rows if m}
    assert set(cycles_of) == {"now", "fill_rows", "2 pixel sets", "full rows"}, out.stdout
    assert cycles_of["full rows"] < cycles_of["fill_rows"] < cycles_of["now"]
    assert "modelled" in out.stdout and "bound" in out.stdout
