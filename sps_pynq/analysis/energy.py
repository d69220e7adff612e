"""Energy per inference on the board: power rails sampled while inferences run, idle power subtracted.

Method (one `measure_model` call):
  1. idle phase: the model is loaded, nothing runs, for `seconds`; the rails are sampled (pynq.DataRecorder on
     the rails of pynq.get_rails()) and averaged -> P_idle per rail;
  2. active phase: inferences run back to back for `seconds` (one inference = copy the int8 input into the
     arena, run the whole program, copy the int8 output back), the rails are sampled the same way -> P_active;
  3. P = sum over the chosen rails of (P_active - P_idle); J/inference = P * active wall time / inferences;
     latency median and p90 from per-inference times; throughput = inferences / active wall time.

Rails: on a ZCU104, PYNQ names the PMBus rails 12V, 1V13, 1V2, 1V8, 3V3, 5V0, FMC, INT, MGTA, MGTRA (see
PYNQ's ZCU104 pmbus notebook). The default sum is INT (VCCINT, 0.85 V: the programmable logic that holds the
SPS array) + 1V2 (1.2 V: the DDR4 the arena lives in); the 12V board input (the whole board) is reported beside
it. `rails=` / `--rails` chooses others ("all" sums every rail but 12V).

Where no rails exist (a workstation, the virtual board, a remote PYNQ device: pynq.get_rails() reads the
sensors of the machine running Python, not those of a remote board) power is reported as unavailable with the
reason, and latency/throughput are still measured. No power number is ever made up.
Torch- and onnx-free: this runs on the board.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ZCU104_DEFAULT_RAILS = ("INT", "1V2")
BOARD_INPUT_RAIL = "12V"
SAMPLE_INTERVAL_S = 0.02


# -- arithmetic (pure, unit-tested) ------------------------------------------------------------------------------
def time_average(times: Sequence[float], values: Sequence[float]) -> float:
    """Time-weighted mean of samples (trapezoids between sample times); the plain value for one sample."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no power samples")
    if v.size == 1 or t[-1] <= t[0]:
        return float(v.mean())
    trapezoid = getattr(np, "trapezoid", None) or np.trapz      # numpy 2 renamed it
    return float(trapezoid(v, t) / (t[-1] - t[0]))


def latency_summary(latencies_s: Sequence[float]) -> Dict[str, float]:
    lat = np.asarray(latencies_s, dtype=np.float64)
    if lat.size == 0:
        raise ValueError("no inferences ran")
    return {"latency_median_s": float(np.median(lat)), "latency_p90_s": float(np.percentile(lat, 90)),
            "latency_min_s": float(lat.min())}


def energy_per_inference(active_w: float, idle_w: float, wall_s: float, inferences: int) -> Tuple[float, float]:
    """(power above idle in W, joules per inference) = (P_active - P_idle, (P_active - P_idle) * wall / n)."""
    if inferences <= 0 or wall_s <= 0:
        raise ValueError(f"need inferences > 0 and wall time > 0, got {inferences} and {wall_s}")
    dynamic = active_w - idle_w
    return dynamic, dynamic * wall_s / inferences


# -- power sampling -------------------------------------------------------------------------------------------------
class Sampler:
    """Samples named power sensors (objects with `.value` in watts) in a background thread."""

    def __init__(self, sensors: Dict[str, object], interval: float = SAMPLE_INTERVAL_S):
        self.sensors = sensors
        self.interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.times: List[float] = []
        self.rows: List[List[float]] = []

    def _loop(self):
        names = list(self.sensors)
        while True:
            self.times.append(time.perf_counter())
            self.rows.append([float(self.sensors[n].value) for n in names])
            if self._stop.wait(self.interval):
                break

    def start(self) -> "Sampler":
        self.times, self.rows = [], []
        self._t0 = time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="power-sampler")
        self._thread.start()
        return self

    def stop(self) -> Dict[str, float]:
        """Stop and return the time-averaged power per sensor."""
        self._stop.set()
        self._thread.join()
        self.times.append(time.perf_counter())          # one last sample closes the window
        self.rows.append([float(s.value) for s in self.sensors.values()])
        cols = np.asarray(self.rows, dtype=np.float64).T
        return {n: time_average(self.times, cols[j]) for j, n in enumerate(self.sensors)}

    def series(self) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """(sample times in seconds from the start() call, {sensor: watts}) of the last start()..stop()."""
        t = np.asarray(self.times, dtype=np.float64)
        cols = np.asarray(self.rows, dtype=np.float64).reshape(len(t), len(self.sensors)).T
        return t - self._t0, {n: cols[j] for j, n in enumerate(self.sensors)}


class DataRecorderSampler:
    """The same, through pynq.DataRecorder (pandas), as PYNQ's own notebooks measure power."""

    def __init__(self, sensors: Dict[str, object], interval: float = SAMPLE_INTERVAL_S):
        from pynq.pmbus import DataRecorder     # pynq's top level only exports it on a local board
        self.sensors = sensors
        self.interval = interval
        self.recorder = DataRecorder(*sensors.values())

    def start(self) -> "DataRecorderSampler":
        import pandas as pd
        self.recorder.reset()
        self._t0 = pd.Timestamp.now()          # the clock DataRecorder stamps its rows with
        self.recorder.record(self.interval)
        return self

    def stop(self) -> Dict[str, float]:
        self.recorder.stop()
        frame = self.recorder.frame
        times = (frame.index - frame.index[0]).total_seconds().to_numpy() if len(frame) else []
        return {n: time_average(times, frame[s.name].to_numpy()) for n, s in self.sensors.items()}

    def series(self) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """(sample times in seconds from the start() call, {sensor: watts}) of the DataRecorder's frame."""
        frame = self.recorder.frame
        times = (frame.index - self._t0).total_seconds().to_numpy() if len(frame) else np.zeros(0)
        return np.asarray(times, np.float64), {n: frame[s.name].to_numpy(np.float64) for n, s in self.sensors.items()}


def board_rails(rail_names: "Sequence[str] | str | None" = None, remote: bool = False
                ) -> Tuple[Dict[str, object], Dict[str, object], str]:
    """(summed power sensors by rail, extra sensors reported beside them, reason when empty)."""
    if remote:
        return {}, {}, ("the board is a remote PYNQ device: pynq.get_rails() would read this machine's sensors, "
                        "not the board's; run the energy measurement on the board itself")
    try:
        import pynq
        get_rails = getattr(pynq, "get_rails", None)
        if get_rails is None:
            from pynq.pmbus import get_rails
        rails = get_rails()
    except Exception as e:
        return {}, {}, f"pynq's PMBus rails are unavailable here ({type(e).__name__}: {e})"
    powered = {n: r.power for n, r in (rails or {}).items() if getattr(r, "power", None) is not None}
    if not powered:
        return {}, {}, "pynq.get_rails() found no power rails (no PMBus/libsensors on this machine)"
    if rail_names in (None, "", "default"):
        wanted = [n for n in ZCU104_DEFAULT_RAILS if n in powered]
        if not wanted:
            return {}, {}, (f"none of the default ZCU104 rails {', '.join(ZCU104_DEFAULT_RAILS)} exist here "
                            f"(rails: {', '.join(sorted(powered))}); choose with --rails")
    elif rail_names == "all":
        wanted = [n for n in powered if n != BOARD_INPUT_RAIL]
    else:
        wanted = list(rail_names.split(",") if isinstance(rail_names, str) else rail_names)
        missing = [n for n in wanted if n not in powered]
        if missing:
            return {}, {}, f"rails {', '.join(missing)} do not exist (rails here: {', '.join(sorted(powered))})"
    extra = {BOARD_INPUT_RAIL: powered[BOARD_INPUT_RAIL]} if BOARD_INPUT_RAIL in powered and \
        BOARD_INPUT_RAIL not in wanted else {}
    return {n: powered[n] for n in wanted}, extra, ""


def make_sampler(sensors: Dict[str, object], interval: float = SAMPLE_INTERVAL_S):
    try:
        import pandas  # noqa: F401  (pynq.DataRecorder needs it)
        return DataRecorderSampler(sensors, interval)
    except Exception:
        return Sampler(sensors, interval)


# -- a measurement ------------------------------------------------------------------------------------------------
MAX_TRACE_POINTS = 5000          # inferences kept in a trace (evenly spaced) when a run has more


@dataclass
class PowerTrace:
    """What a measurement saw over time, in seconds from its start: the power samples (summed over the rails, empty
    without rails), the idle and active windows, and when each inference ended with its latency."""
    rails: List[str]
    times_s: List[float] = field(default_factory=list)
    power_w: List[float] = field(default_factory=list)         # sum over `rails` per sample
    idle_s: Optional[Tuple[float, float]] = None               # the idle window (only measured with rails)
    active_s: Tuple[float, float] = (0.0, 0.0)                 # the window of the counted inferences
    inference_end_s: List[float] = field(default_factory=list)
    latency_s: List[float] = field(default_factory=list)


@dataclass
class EnergyResult:
    name: str
    inferences: int
    wall_s: float
    latency_median_s: float
    latency_p90_s: float
    latency_min_s: float
    throughput_per_s: float
    rails: List[str] = field(default_factory=list)        # rails summed into the power numbers
    idle_w: Optional[float] = None                        # sum over `rails`
    active_w: Optional[float] = None
    dynamic_w: Optional[float] = None                     # active - idle
    joules_per_inference: Optional[float] = None
    per_rail: Dict[str, Dict[str, float]] = field(default_factory=dict)   # {rail: {idle_w, active_w}}
    board_input: Dict[str, float] = field(default_factory=dict)           # the 12V rail, if present
    power_unavailable: str = ""                           # why there are no power numbers
    note: str = ""                                        # what the latency includes, when it is not the FPGA's
    register_accesses_per_inference: Optional[float] = None   # board: 1 START write + CTRL reads, mean
    trace: Optional[PowerTrace] = None                    # over time, for plot_trace (not in to_dict by default)

    def to_dict(self, trace: bool = False) -> dict:
        out = asdict(self)
        if not trace:
            out.pop("trace")
        return out


def measure(name: str, run_once: Callable[[], None], seconds: float, sensors: Dict[str, object],
            extra: Optional[Dict[str, object]] = None, why_no_power: str = "",
            sampler_factory: Callable = make_sampler, min_inferences: int = 3,
            clock: Callable[[], float] = time.perf_counter) -> EnergyResult:
    """Idle phase (when there are sensors), then inferences back to back for `seconds`; see the module doc."""
    extra = extra or {}
    every = {**sensors, **extra}
    idle = {}
    origin = clock()
    phases = []                                  # (start in seconds from origin, the phase's sampler)
    idle_window = None
    if every:
        sampler = sampler_factory(every)
        start = clock() - origin                 # series() counts from start(): both phases on one timeline
        sampler.start()
        time.sleep(seconds)
        idle = sampler.stop()
        idle_window = (start, clock() - origin)
        phases.append((start, sampler))
    run_once()                                   # warm-up: caches, first-touch page faults, lazy builds
    latencies, ends = [], []
    sampler = sampler_factory(every) if every else None
    active_start = clock() - origin
    if sampler is not None:
        sampler.start()
    t0 = clock()
    while True:
        t = clock()
        run_once()
        now = clock()
        latencies.append(now - t)
        ends.append(now - origin)
        if now - t0 >= seconds and len(latencies) >= min_inferences:
            break
    wall = clock() - t0
    active = sampler.stop() if sampler else {}
    if sampler is not None:
        phases.append((active_start, sampler))
    lat = latency_summary(latencies)
    result = EnergyResult(name=name, inferences=len(latencies), wall_s=wall, throughput_per_s=len(latencies) / wall,
                          rails=list(sensors), power_unavailable="" if sensors else
                          (why_no_power or "no power rails"), **lat)
    if sensors:
        idle_w = sum(idle[n] for n in sensors)
        active_w = sum(active[n] for n in sensors)
        result.idle_w, result.active_w = idle_w, active_w
        result.dynamic_w, result.joules_per_inference = energy_per_inference(active_w, idle_w, wall, len(latencies))
        result.per_rail = {n: {"idle_w": idle[n], "active_w": active[n]} for n in sensors}
        for n in extra:
            dyn, jpi = energy_per_inference(active[n], idle[n], wall, len(latencies))
            result.board_input = {"rail": n, "idle_w": idle[n], "active_w": active[n], "dynamic_w": dyn,
                                  "joules_per_inference": jpi}
    result.trace = _trace(list(sensors), phases, idle_window, (t0 - origin, t0 - origin + wall), ends, latencies)
    return result


def _trace(rails, phases, idle_window, active_window, ends, latencies) -> PowerTrace:
    times, power = [], []
    for start, sampler in phases:
        series = getattr(sampler, "series", None)       # a sampler given by a caller may not record one
        if series is None or not rails:
            continue
        t, values = series()
        if len(t):
            times += (start + t).tolist()
            power += np.sum([values[n] for n in rails], axis=0).tolist()
    keep = np.unique(np.linspace(0, len(ends) - 1, min(len(ends), MAX_TRACE_POINTS)).astype(int))
    return PowerTrace(rails=rails, times_s=times, power_w=power, idle_s=idle_window, active_s=active_window,
                      inference_end_s=[ends[k] for k in keep], latency_s=[latencies[k] for k in keep])


def plot_trace(results: Sequence[EnergyResult], axes=None):
    """One panel per result: the power over time (summed rails) with the idle and active windows shaded and the
    two averages drawn; without rails, each inference's latency over the active window and why there is no
    power. Returns the matplotlib figure (matplotlib is imported here only)."""
    import matplotlib.pyplot as plt
    results = list(results)
    if axes is None:
        fig, axes = plt.subplots(len(results), 1, figsize=(8, 2.6 * len(results)), squeeze=False)
        axes = axes[:, 0]
    fig = axes[0].figure
    for r, ax in zip(results, axes):
        tr = r.trace or PowerTrace(rails=r.rails)
        if tr.idle_s is not None:
            ax.axvspan(*tr.idle_s, color="0.6", alpha=0.25, linewidth=0, label="idle (model loaded, nothing runs)")
        ax.axvspan(*tr.active_s, color="tab:orange", alpha=0.18, linewidth=0,
                   label=f"active ({r.inferences} inferences)")
        if tr.power_w:
            ax.plot(tr.times_s, tr.power_w, color="tab:blue", linewidth=1, label=f"{'+'.join(tr.rails)} power")
            if tr.idle_s is not None and r.idle_w is not None:
                ax.hlines(r.idle_w, *tr.idle_s, colors="0.3", linestyles="--", label=f"idle {r.idle_w:.3f} W")
            if r.active_w is not None:
                ax.hlines(r.active_w, *tr.active_s, colors="tab:red", linestyles="--",
                          label=f"active {r.active_w:.3f} W -> {r.joules_per_inference * 1e3:.4f} mJ/inference")
            ax.set_ylabel("power (W)")
        else:
            ax.plot(tr.inference_end_s, np.asarray(tr.latency_s) * 1e3, ".", markersize=2, color="tab:blue",
                    label="latency of each inference")
            ax.set_ylabel("latency (ms)")
            ax.text(0.01, 0.95, f"power unavailable: {r.power_unavailable}", transform=ax.transAxes, fontsize=7,
                    va="top", wrap=True)
        ax.set_title(r.name, fontsize=9)
        ax.set_xlabel("time (s)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def session_runner(session, polls: Optional[List[int]] = None) -> Callable[[], None]:
    """One inference through `session`: a seeded int8 input in, the whole program, int8 output out. With
    `polls`, the board driver's CTRL reads of each run (Session.last_run_info) are appended to it."""
    t_in = session.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, size=t_in.shape, dtype=np.int8)

    def run_once():
        session.run_int8(x)
        if polls is not None:
            polls.extend(info["polls"] for info in session.last_run_info() if "polls" in info)
    return run_once


def measure_model(path_or_program, seconds: float = 10.0, backend: str = "board", rails=None,
                  name: Optional[str] = None, **backend_kwargs) -> EnergyResult:
    """Load a .spsmodel in a Session on `backend` and measure it (power only on a local board with PMBus
    rails)."""
    from ..program import Program
    from ..runtime.session import Session
    with Session(path_or_program, backend=backend, **backend_kwargs) as s:
        be = s.backend
        if be.virtual:
            sensors, extra, why = {}, {}, "the virtual board has no power rails (it is a model, not a board)"
        elif backend == "board":
            sensors, extra, why = board_rails(rails, remote=be.remote)
        else:
            sensors, extra, why = {}, {}, (f"the {backend} backend runs on this computer's CPU: FPGA power rails "
                                           f"do not apply")
        polls: List[int] = []
        result = measure(name or str(path_or_program if not isinstance(path_or_program, Program) else "program"),
                         session_runner(s, polls), seconds, sensors, extra, why)
        if polls:
            result.register_accesses_per_inference = 1 + float(np.mean(polls))
        if be.virtual:
            result.note = ("virtual board: latency is PYNQ's remote protocol (the whole arena crosses the network "
                           "twice per inference) plus the golden model on this CPU, not the FPGA's latency")
        elif backend != "board":
            result.note = f"{backend} backend: latency of the {backend} model on this computer, not the FPGA's"
        return result


def comparison(sps: EnergyResult, dense: EnergyResult) -> Dict[str, Optional[float]]:
    """Dense over SPS: speed-up (latency ratio) and energy-efficiency gain (J/inference ratio)."""
    out = {"speedup_median_latency": dense.latency_median_s / sps.latency_median_s,
           "throughput_ratio": sps.throughput_per_s / dense.throughput_per_s,
           "energy_efficiency_gain": None}
    if sps.joules_per_inference and dense.joules_per_inference and sps.joules_per_inference > 0:
        out["energy_efficiency_gain"] = dense.joules_per_inference / sps.joules_per_inference
    return out


def format_result(r: EnergyResult) -> str:
    lines = [f"{r.name}: {r.inferences} inferences in {r.wall_s:.2f} s",
             f"  latency median {r.latency_median_s * 1e3:.3f} ms, p90 {r.latency_p90_s * 1e3:.3f} ms; "
             f"throughput {r.throughput_per_s:.1f} inferences/s"]
    if r.register_accesses_per_inference is not None:
        lines.append(f"  register accesses per inference: {r.register_accesses_per_inference:.1f} "
                     f"(1 START write + CTRL polls, mean)")
    if r.note:
        lines.append(f"  note: {r.note}")
    if r.joules_per_inference is None:
        lines.append(f"  power: unavailable ({r.power_unavailable})")
    else:
        lines.append(f"  power over rails {'+'.join(r.rails)}: idle {r.idle_w:.3f} W, active {r.active_w:.3f} W, "
                     f"above idle {r.dynamic_w:.3f} W -> {r.joules_per_inference * 1e3:.4f} mJ/inference")
        if r.board_input:
            b = r.board_input
            lines.append(f"  board input {b['rail']}: idle {b['idle_w']:.3f} W, active {b['active_w']:.3f} W -> "
                         f"{b['joules_per_inference'] * 1e3:.4f} mJ/inference (whole board)")
    return "\n".join(lines)
