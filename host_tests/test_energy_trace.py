"""The power trace of an energy measurement (sps_pynq.analysis.energy: PowerTrace, plot_trace), which the energy
notebook plots: samples on one timeline with the idle and active windows, fake rails with exact values."""
import numpy as np
import pytest

from sps_pynq.analysis.energy import MAX_TRACE_POINTS, Sampler, measure, plot_trace


class PhaseRail:
    """Reads `idle` until the first inference, then `active`."""

    def __init__(self, name, idle, active, state):
        self.name, self.idle, self.active, self.state = name, idle, active, state

    @property
    def value(self):
        return self.active if self.state["running"] else self.idle


def test_trace_holds_both_phases_on_one_timeline():
    state = {"running": False}

    def run_once():
        state["running"] = True
    sensors = {"INT": PhaseRail("INT_power", 3.0, 4.5, state), "1V2": PhaseRail("1V2_power", 1.0, 1.5, state)}
    r = measure("m", run_once, 0.05, sensors, {"12V": PhaseRail("12V", 10, 12, state)},
                sampler_factory=lambda s: Sampler(s, 0.005))
    tr = r.trace
    assert tr.rails == ["INT", "1V2"]
    t, p = np.array(tr.times_s), np.array(tr.power_w)
    assert len(t) == len(p) > 10 and np.all(np.diff(t) >= 0)
    (i0, i1), (a0, a1) = tr.idle_s, tr.active_s
    assert 0 <= i0 < i1 <= a0 < a1 and a1 - a0 == pytest.approx(r.wall_s)
    assert np.all(p[t < i1 - 1e-3] == 4.0)                   # the idle samples: INT + 1V2 idle, not the 12V rail
    assert np.all(p[t > a0 + 1e-3] == 6.0)
    assert len(tr.inference_end_s) == min(r.inferences, MAX_TRACE_POINTS)
    assert all(a0 <= e <= a1 + 1e-6 for e in tr.inference_end_s)
    assert "trace" not in r.to_dict() and r.to_dict(trace=True)["trace"]["rails"] == ["INT", "1V2"]


def test_trace_without_rails_keeps_latencies_only_and_is_bounded():
    r = measure("m", lambda: None, 0.05, {}, why_no_power="none here")
    tr = r.trace
    assert tr.power_w == [] and tr.idle_s is None
    assert 0 < len(tr.latency_s) == len(tr.inference_end_s) <= min(r.inferences, MAX_TRACE_POINTS)


def test_plot_trace_draws_windows_power_and_says_when_there_is_none():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    state = {"running": False}

    def run_once():
        state["running"] = True
    with_rails = measure("sps", run_once, 0.03, {"INT": PhaseRail("INT", 2.0, 3.0, state)},
                         sampler_factory=lambda s: Sampler(s, 0.005))
    without = measure("dense", lambda: None, 0.02, {}, why_no_power="the virtual board has no power rails")
    fig = plot_trace([with_rails, without])
    top, bottom = fig.axes
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert any(lab.startswith("idle (") for lab in labels) and any(lab.startswith("active (") for lab in labels)
    assert any("mJ/inference" in lab for lab in labels) and top.get_ylabel() == "power (W)"
    assert bottom.get_ylabel() == "latency (ms)"
    assert any("power unavailable: the virtual board" in t.get_text() for t in bottom.texts)
    import matplotlib.pyplot as plt
    plt.close(fig)


class PynqLikeRail(PhaseRail):
    """What pynq.DataRecorder reads: get_value(parents) and parents, as pynq.pmbus.Sensor has."""
    parents = ()

    def get_value(self, parents=None):
        return self.value


def test_trace_through_pynq_datarecorder():
    pytest.importorskip("pandas")
    pytest.importorskip("pynq")
    from sps_pynq.analysis import energy
    state = {"running": False}

    def run_once():
        state["running"] = True
    r = measure("m", run_once, 0.1, {"INT": PynqLikeRail("INT_power", 2.0, 2.75, state)},
                sampler_factory=lambda s: energy.DataRecorderSampler(s, 0.01))
    t, p = np.array(r.trace.times_s), np.array(r.trace.power_w)
    (i0, i1), (a0, a1) = r.trace.idle_s, r.trace.active_s
    assert len(t) > 5 and np.all(np.diff(t) >= 0) and t[0] >= i0 - 0.05 and t[-1] <= a1 + 0.05
    assert set(p[t < i1 - 0.005]) == {2.0} and set(p[t > a0 + 0.005]) == {2.75}
