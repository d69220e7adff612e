"""Energy measurement arithmetic with fake rails, rail selection, and the board runtime's torch/onnx independence."""
import subprocess
import sys
import textwrap

import pytest

from sps_pynq.analysis import energy
from sps_pynq.analysis.energy import (EnergyResult, Sampler, board_rails, comparison, energy_per_inference,
                                     format_result, latency_summary, measure, time_average)


def test_energy_per_inference_subtracts_idle():
    dyn, jpi = energy_per_inference(active_w=7.5, idle_w=5.0, wall_s=2.0, inferences=100)
    assert dyn == pytest.approx(2.5) and jpi == pytest.approx(0.05)
    with pytest.raises(ValueError):
        energy_per_inference(1.0, 0.5, 1.0, 0)


def test_time_average_is_time_weighted():
    assert time_average([0.0, 1.0, 3.0], [1.0, 1.0, 4.0]) == pytest.approx(2.0)
    assert time_average([5.0], [3.0]) == 3.0
    with pytest.raises(ValueError):
        time_average([], [])


def test_latency_summary():
    s = latency_summary([0.001 * k for k in range(1, 11)])
    assert s["latency_median_s"] == pytest.approx(0.0055) and s["latency_p90_s"] == pytest.approx(0.0091)


class PhaseRail:
    """A rail that reads `idle` until the first inference, then `active`: exact numbers for both phases."""

    def __init__(self, name, idle, active, state):
        self.name, self.idle, self.active, self.state = name, idle, active, state

    @property
    def value(self):
        return self.active if self.state["running"] else self.idle


def test_measure_with_fake_rails():
    state = {"running": False, "calls": 0}

    def run_once():
        state["running"] = True
        state["calls"] += 1

    sensors = {"INT": PhaseRail("INT_power", 3.0, 4.5, state), "1V2": PhaseRail("1V2_power", 1.0, 1.5, state)}
    extra = {"12V": PhaseRail("12V_power", 10.0, 13.0, state)}
    r = measure("m", run_once, 0.05, sensors, extra, sampler_factory=lambda s: Sampler(s, 0.005))
    assert r.rails == ["INT", "1V2"]
    assert r.idle_w == pytest.approx(4.0) and r.active_w == pytest.approx(6.0) and r.dynamic_w == pytest.approx(2.0)
    assert r.joules_per_inference == pytest.approx(2.0 * r.wall_s / r.inferences)
    assert r.per_rail["INT"] == {"idle_w": pytest.approx(3.0), "active_w": pytest.approx(4.5)}
    assert r.board_input["dynamic_w"] == pytest.approx(3.0)
    assert r.inferences == state["calls"] - 1           # the warm-up run is not counted
    assert r.throughput_per_s == pytest.approx(r.inferences / r.wall_s)
    assert "mJ/inference" in format_result(r)


def test_measure_without_rails_reports_latency_and_says_why():
    r = measure("m", lambda: None, 0.01, {}, why_no_power="no rails on this machine")
    assert r.joules_per_inference is None and r.idle_w is None
    assert r.power_unavailable == "no rails on this machine"
    assert r.inferences >= 3 and r.latency_median_s >= 0
    assert "power: unavailable (no rails on this machine)" in format_result(r)


def test_comparison_ratios():
    def res(lat, jpi):
        return EnergyResult("x", 10, 1.0, lat, lat, lat, 1.0 / lat, joules_per_inference=jpi)
    c = comparison(res(0.010, 0.02), res(0.022, 0.05))
    assert c["speedup_median_latency"] == pytest.approx(2.2) and c["energy_efficiency_gain"] == pytest.approx(2.5)
    assert comparison(res(0.01, None), res(0.02, None))["energy_efficiency_gain"] is None


class FakeRail:
    def __init__(self, name):
        self.name = name
        self.power = type("S", (), {"name": name + "_power", "value": 1.0})()


def test_rail_selection(monkeypatch):
    pynq = pytest.importorskip("pynq")
    rails = {n: FakeRail(n) for n in ("12V", "INT", "1V2", "1V8", "MGTA")}
    monkeypatch.setattr(pynq, "get_rails", lambda: rails, raising=False)
    sensors, extra, why = board_rails()
    assert list(sensors) == ["INT", "1V2"] and list(extra) == ["12V"] and why == ""
    sensors, extra, _ = board_rails("all")
    assert sorted(sensors) == ["1V2", "1V8", "INT", "MGTA"]
    sensors, _, why = board_rails("INT,VCCBRAM")
    assert not sensors and "VCCBRAM" in why
    sensors, _, why = board_rails(remote=True)
    assert not sensors and "remote" in why
    monkeypatch.setattr(pynq, "get_rails", lambda: {}, raising=False)
    sensors, _, why = board_rails()
    assert not sensors and "no power rails" in why


BLOCKED_IMPORT = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "onnxruntime", "onnxscript"):
                raise ImportError(f"{name} is blocked: the board runtime must not import it")
            return None
    sys.meta_path.insert(0, Block())
    import sps_pynq.backends.board, sps_pynq.backends.board.driver, sps_pynq.analysis.energy, sps_pynq.model_file
    import sps_pynq.virtual_board.core, sps_pynq.commands.energy
    bad = [m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxruntime", "onnxscript")]
    assert not bad, bad
    print("ok")
""")


def test_board_runtime_imports_without_torch_or_onnx():
    out = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


class PynqLikeSensor(PhaseRail):
    """What pynq.DataRecorder reads: get_value(parents) and parents, as pynq.pmbus.Sensor has."""
    parents = ()

    def get_value(self, parents=None):
        return self.value


def test_measure_through_pynq_datarecorder():
    pytest.importorskip("pandas")
    pytest.importorskip("pynq")
    from pynq.pmbus import DataRecorder  # noqa: F401  (the class make_sampler uses on a board)
    state = {"running": False}
    sensors = {"INT": PynqLikeSensor("INT_power", 2.0, 2.75, state)}

    def run_once():
        state["running"] = True
    r = measure("m", run_once, 0.1, sensors,
                sampler_factory=lambda s: energy.DataRecorderSampler(s, 0.01))
    assert r.idle_w == pytest.approx(2.0) and r.active_w == pytest.approx(2.75)
    assert r.joules_per_inference == pytest.approx(0.75 * r.wall_s / r.inferences)
