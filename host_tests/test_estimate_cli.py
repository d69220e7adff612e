"""`sps-pynq estimate` on a tiny packed model, with a fake cycle model (1,000 cycles per descriptor) so that the
command's arithmetic (time, frames/s, energy by component, the modelled labels) is pinned by hand; its errors;
and that it runs with torch and onnx blocked (it is on the board's side)."""
import json
import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest
from onnx import helper

from sps_pynq.analysis import energy_model as em
from sps_pynq.cli import main
from sps_pynq.compiler.testing import make_model
from sps_pynq.hw.cycles import LayerCycles


# The cycle model's own result type, with no load cycles: what a fake cycle model returns.
FakeCycles = partial(LayerCycles, load=0)


def fake_cycles(d, hw):
    return FakeCycles(total=1000, mac=100)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """conv 4 -> 16 channels 3x3 (PPS 8x4) on a 4x4 map, ReLU, then a fully connected layer to 5 classes."""
    rng = np.random.default_rng(3)
    d = tmp_path_factory.mktemp("estimate")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1)]
    inits = {"w": rng.standard_normal((16, 4, 3, 3)), "B": rng.standard_normal((5, 16 * 4 * 4))}
    import onnx
    onnx.save(make_model(nodes, [("x", [1, 4, 4, 4])], ["y"], inits), d / "tiny.onnx")
    out = d / "tiny.spsmodel"
    # the plain encoding: the event counts below are the model's K = 4 taps a kernel
    assert main(["pack", str(d / "tiny.onnx"), "-o", str(out), "--no-fill-rows", "--num-calib", "2"]) == 0
    return out


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(em, "_default_cycles", lambda: fake_cycles)
    monkeypatch.setattr(em, "cycle_model_name", lambda: "fake (1,000 cycles per descriptor)")


def test_json_totals_by_hand(tiny, fake_model, capsys):
    assert main(["estimate", str(tiny), "--json", "--clock", "200"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["modelled"] is True and doc["estimates"][0]["modelled"] is True
    e = doc["estimates"][0]
    assert [l["name"] for l in e["layers"]] == ["conv1", "fc"]
    assert e["cycles"] == 2000 and e["seconds"] == pytest.approx(2000 / 200e6) and e["fps"] == pytest.approx(1e5)
    k = doc["energy_constants"]
    assert e["energy_j"]["static"] == pytest.approx(k["static_w"] * 2000 / 200e6)
    assert e["total_j"] == pytest.approx(sum(e["energy_j"].values()))
    ev = e["layers"][0]["events"]
    assert ev["mac_active"] + ev["mac_zero_weight"] == 16 * 16 * 4 * 4   # O x pixels x I x K
    assert ev["mac_active"] % 16 == 0 and ev["mac_active"] > 0.9 * 4096  # nonzero weights x 16 pixels
    assert ev["mac_idle"] == 100 * 256 - 16 * 16 * 4 * 4                 # 100 MAC cycles x 16 x 16 slots
    assert e["layers"][0]["energy_j"]["mac"] == pytest.approx(
        1e-12 * k["mac_pj"] * (ev["mac_active"] + k["mac_idle_fraction"] * (ev["mac_zero_weight"] + 21504)))


def test_text_labels_every_number_modelled(tiny, fake_model, capsys):
    assert main(["estimate", str(tiny), "--dense"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tiny} (SPS, as packed): MODELLED estimate")
    assert "per layer, all modelled" in out
    for line in out.splitlines():
        if line.startswith(("total", "DDR per", "energy per", "MAC slots", "dense over")):
            assert "(modelled" in line, line
    assert "2,000 cycles = 0.013 ms at 150 MHz -> 75,000.0 frames/s (modelled, batch 1)" in out
    assert "unpruned (every PPS conv dense)" in out


def test_clock_scales_time_not_cycles(tiny, fake_model, capsys):
    main(["estimate", str(tiny), "--json", "--clock", "100"])
    a = json.loads(capsys.readouterr().out)["estimates"][0]
    main(["estimate", str(tiny), "--json", "--clock", "300"])
    b = json.loads(capsys.readouterr().out)["estimates"][0]
    assert a["cycles"] == b["cycles"] and a["seconds"] == pytest.approx(3 * b["seconds"])
    assert a["energy_j"]["static"] == pytest.approx(3 * b["energy_j"]["static"])
    assert a["energy_j"]["mac"] == pytest.approx(b["energy_j"]["mac"])


def test_errors(tmp_path, capsys):
    assert main(["estimate", str(tmp_path / "missing.spsmodel")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.spsmodel" in err[0] and "Traceback" not in err[0]
    for bad in ("0", "-5", "fast", "inf"):
        with pytest.raises(SystemExit) as e:
            main(["estimate", "m.spsmodel", "--clock", bad])
        assert e.value.code == 2 and "--clock" in capsys.readouterr().err


BLOCKED = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "onnxruntime", "onnxscript"):
                raise ImportError(f"{name} is blocked: the estimate must run on the board")
    sys.meta_path.insert(0, Block())
    from sps_pynq.analysis import energy_model as em
    from sps_pynq.cli import main
    class C:
        total, mac, load, parts = 1000, 100, 0, {}
    em._default_cycles = lambda: (lambda d, hw: C())
    em.cycle_model_name = lambda: "fake"
    assert main(["estimate", sys.argv[1], "--json"]) == 0
""")


def test_runs_without_torch_or_onnx(tiny):
    out = subprocess.run([sys.executable, "-c", BLOCKED, str(tiny)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["estimates"][0]["cycles"] == 2000


def test_energy_command_prints_the_estimate_beside_the_measurement(tiny, fake_model, capsys):
    assert main(["energy", str(tiny), "--backend", "sim", "--seconds", "0.05", "--clock", "100"]) == 0
    out = capsys.readouterr().out
    assert "power: unavailable" in out                                  # sim: no rails, nothing measured
    assert "modelled estimate (not measured; docs/energy_model.md, nominal constants, 100 MHz)" in out
    assert "core time 0.020 ms (modelled)" in out                        # 2 x 1,000 cycles at 100 MHz
    assert "no measured energy to compare" in out and "latency / modelled" not in out
    assert main(["energy", str(tiny), "--backend", "sim", "--seconds", "0.05", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["modelled_estimates"][0]["cycles"] == 2000 and doc["modelled_estimates"][0]["modelled"] is True
