"""`sps-pynq selftest`: after installation, check a backend (the board first) against a bit-exact reference.

Checks, each PASS, FAIL or SKIP with one line of detail:

    random layer programs   `programs` random chains of `layers` layers (PPS and dense convs, pools, residual
                            adds; sps_pynq.testing.layers) at random int8 inputs, two inputs per load: every
                            output byte equal to the reference's
    demo model              the shipped trained model (sps_pynq.demo) on the shipped MNIST digits: int8 outputs
                            equal to the reference's, predictions equal to those recorded when it was made
    interrupt vs polling    (board) the same program waited for by the interrupt and by polling CTRL: both
                            bit-exact, each ended the way it was asked to (SKIP when the device has no interrupt,
                            e.g. a remote board, after checking both runs' outputs)
    partial syncs           a whole input, then only its second half rewritten, then one byte: each run sees
                            exactly the bytes written (the board syncs only what changed), outputs read back in
                            pieces equal the reference's
    counters                (board, rtl) per layer: the core's records exist, MAC-active cycles <= cycles,
                            CONV ideal cycles (I*K per tile and row group) <= MAC cycles; the layers' MAC
                            cycles sum to the run's counter, their cycles to at most the run's

The reference is `sim` (the C golden model), or the numpy reference (`ref`) when the backend under test is sim.
numpy only (torch- and onnx-free): this runs on the board.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from ..backends import backend_class
from ..errors import BackendError, SpsError
from ..hw import layout
from ..hw.config import HwConfig, get_config
from ..hw.descriptor import Op
from ..program import Program
from .layers import random_packed_program

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
DEFAULT_HW = {"board": "zcu104", "sim": "zcu104", "rtl": "small"}
DEFAULT_DIGITS = {"rtl": 2}           # a simulated clock cycle costs tens of microseconds: a taste only


def reference_for(backend: str) -> str:
    return "ref" if backend == "sim" else "sim"


@dataclass
class CheckResult:
    name: str
    status: str             # PASS, FAIL or SKIP
    detail: str
    seconds: float = 0.0


@dataclass
class SelfTestReport:
    backend: str
    reference: str
    hw: str
    checks: List[CheckResult] = field(default_factory=list)
    where: str = ""          # the device and overlay, when the backend says

    @property
    def passed(self) -> bool:
        """No check failed and at least one passed."""
        return not any(c.status == FAIL for c in self.checks) and any(c.status == PASS for c in self.checks)

    def counts(self) -> Dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (PASS, FAIL, SKIP)}

    def table(self) -> str:
        width = max([len(c.name) for c in self.checks] + [5])
        lines = [f"{'check':<{width}}  result  {'time':>7}  detail"]
        for c in self.checks:
            lines.append(f"{c.name:<{width}}  {c.status:<6}  {c.seconds:>6.1f}s  {c.detail}")
        n = self.counts()
        lines.append(f"selftest {'PASS' if self.passed else 'FAIL'}: {n[PASS]} passed, {n[FAIL]} failed, "
                     f"{n[SKIP]} skipped ({self.backend} against {self.reference})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "reference": self.reference, "hw": self.hw, "where": self.where,
                "passed": self.passed, "counts": self.counts(), "checks": [asdict(c) for c in self.checks]}


class _Failed(Exception):
    """A check found a difference: its message is the check's detail."""


def first_difference(got: np.ndarray, want: np.ndarray) -> str:
    """'' when equal, else how many bytes differ and the first of them."""
    got, want = np.asarray(got).reshape(-1), np.asarray(want).reshape(-1)
    if got.shape != want.shape:
        return f"{got.size} bytes where {want.size} were expected"
    bad = np.flatnonzero(got != want)
    if bad.size == 0:
        return ""
    j = int(bad[0])
    return f"{bad.size} of {got.size} bytes differ, the first at byte {j} (got {int(got[j])}, expected {int(want[j])})"


def _inputs(program: Program, rng: np.random.Generator, count: int) -> List[np.ndarray]:
    return [rng.integers(-128, 128, size=program.inputs[0].nbytes, dtype=np.int64).astype(np.int8)
            for _ in range(count)]


def _run(backend, program: Program, x: np.ndarray) -> np.ndarray:
    backend.write(program.inputs[0].offset, x)
    backend.run()
    out = program.outputs[0]
    return backend.read(out.offset, out.nbytes)


class SelfTest:
    def __init__(self, backend: str = "board", hw: "str | HwConfig | None" = None, programs: int = 8,
                 layers: int = 5, digits: Optional[int] = None, seed: int = 0,
                 backend_options: Optional[dict] = None, progress: Optional[Callable[[str], None]] = None):
        self.backend = backend
        self.reference = reference_for(backend)
        self.hw = get_config(hw or DEFAULT_HW.get(backend, "zcu104"))
        self.programs = programs
        self.layers = layers
        self.digits = digits if digits is not None else DEFAULT_DIGITS.get(backend)
        self.seed = seed
        self.options = dict(backend_options or {})
        self.progress = progress or (lambda text: None)
        self.where = ""

    # -- helpers -----------------------------------------------------------------------------------------------
    def _backend(self, **extra):
        return backend_class(self.backend)(**{**self.options, **extra})

    def _expected(self, program: Program, xs: List[np.ndarray]) -> List[np.ndarray]:
        with backend_class(self.reference)() as ref:
            ref.load(program)
            return [_run(ref, program, x) for x in xs]

    def _program(self, k: int) -> Program:
        return random_packed_program(np.random.default_rng(self.seed * 1000 + k), self.hw, n_layers=self.layers)

    def _note_where(self, backend) -> None:
        if not self.where and self.backend == "board":
            self.where = f"{getattr(backend.device, 'name', backend.device)}, overlay {backend.overlay_path}" + \
                (" (virtual board: counters are modelled)" if backend.virtual else "")

    # -- the checks --------------------------------------------------------------------------------------------
    def check_random_programs(self) -> str:
        with self._backend() as be:
            for k in range(self.programs):
                program = self._program(k)
                xs = _inputs(program, np.random.default_rng(k), 2)
                want = self._expected(program, xs)
                be.load(program)
                self._note_where(be)
                for j, x in enumerate(xs):
                    diff = first_difference(_run(be, program, x), want[j])
                    if diff:
                        raise _Failed(f"program {k} ({', '.join(layer.name for layer in program.layers)}), "
                                      f"input {j}: {diff}")
        return (f"{self.programs} programs x 2 inputs, {self.layers} layers each ({self.hw.name}): every output "
                f"byte equal to {self.reference}'s")

    def check_demo(self) -> str:
        from .. import demo
        from ..runtime.preprocess import apply_preprocess, quantize
        from ..runtime.session import Session
        images, labels = demo.digits(self.digits)
        outs = {}
        for name, options in ((self.backend, self.options), (self.reference, {})):
            with Session(demo.MODEL, backend=name, **options) as s:
                q = quantize(apply_preprocess(images, s.preprocess), s.inputs[0].scale)
                outs[name] = np.asarray(s.run_int8(q))
                recorded = demo.recorded(s.program).get("digits_predictions")
        got, want = outs[self.backend], outs[self.reference]
        diff = first_difference(got, want)
        if diff:
            bad = [n for n in range(len(images)) if not np.array_equal(got[n], want[n])]
            raise _Failed(f"{len(bad)} of {len(images)} digits differ from {self.reference} (first: digit "
                          f"{bad[0]}): {diff}")
        pred = got.reshape(len(images), -1).argmax(1)
        correct = int(np.sum(pred == labels))
        text = (f"{len(images)} digits: int8 outputs equal to {self.reference}'s; {correct}/{len(images)} right "
                f"({100.0 * correct / len(images):.1f} %)")
        if recorded is None:
            return text + "; the model records no predictions"
        diff = first_difference(pred, np.asarray(recorded[:len(pred)]))
        if diff:
            raise _Failed(f"predictions differ from those recorded when the demo was made: {diff}")
        return text + ", predictions as recorded when the model was made"

    def check_interrupt_vs_polling(self) -> "tuple[str, str]":
        if self.backend != "board":
            return SKIP, f"the {self.backend} backend has no interrupt (a run is a function call)"
        program = self._program(100)
        xs = _inputs(program, np.random.default_rng(100), 1)
        want = self._expected(program, xs)[0]
        waits, notes = {}, {}
        for use_interrupt in (True, False):
            with self._backend(use_interrupt=use_interrupt) as be:
                be.load(program)
                self._note_where(be)
                be.write(program.inputs[0].offset, xs[0])
                info = be.run()
                out = be.read(program.outputs[0].offset, program.outputs[0].nbytes)
                mode = "interrupt" if use_interrupt else "polling"
                diff = first_difference(out, want)
                if diff:
                    raise _Failed(f"{mode}: {diff}")
                waits[mode], notes[mode] = info.get("wait"), be.interrupt_note
        if waits["polling"] != "poll":
            raise _Failed(f"use_interrupt=False ended its wait by {waits['polling']!r}, not by polling")
        if notes["interrupt"] != "interrupt":
            return SKIP, (f"both runs bit-exact, but no interrupt to compare: {notes['interrupt']} (both polled, "
                          f"{waits['interrupt']} / {waits['polling']})")
        if waits["interrupt"] != "interrupt":
            raise _Failed(f"the interrupt is connected, but the run's end was seen by {waits['interrupt']!r}")
        return PASS, "both bit-exact; the interrupt ended one wait, CTRL polls the other"

    def check_partial_syncs(self) -> str:
        program = random_packed_program(np.random.default_rng(self.seed * 1000 + 200), self.hw,
                                        n_layers=self.layers, in_shape=(6, 12, 12))    # 864 input bytes
        t_in, t_out = program.inputs[0], program.outputs[0]
        rng = np.random.default_rng(200)
        x0 = _inputs(program, rng, 1)[0]
        x1 = x0.copy()
        half = t_in.nbytes // 2
        x1[half:] = _inputs(program, rng, 1)[0][half:]
        x2 = x1.copy()
        x2[0] = np.int8(~int(x2[0]) & 0x7F)            # one byte changed
        want = self._expected(program, [x0, x1, x2])
        cut = max(1, t_out.nbytes // 3)
        with self._backend() as be:
            be.load(program)
            self._note_where(be)
            steps = (("whole input", 0, x0), ("second half only", half, x1[half:]), ("one byte", 0, x2[:1]))
            for k, (what, offset, data) in enumerate(steps):
                be.write(t_in.offset + offset, data)
                be.run()
                got = np.concatenate([be.read(t_out.offset, cut), be.read(t_out.offset + cut, t_out.nbytes - cut)])
                diff = first_difference(got, want[k])
                if diff:
                    raise _Failed(f"after writing the {what}: {diff}")
        return (f"input of {t_in.nbytes} bytes written whole, then {t_in.nbytes - half} bytes, then 1 byte; "
                f"outputs read in 2 pieces equal to {self.reference}'s")

    def check_counters(self) -> "tuple[str, str]":
        if self.backend not in ("board", "rtl"):
            return SKIP, f"the {self.backend} backend measures host time, it has no core cycle counters"
        program = self._program(300)
        x = _inputs(program, np.random.default_rng(300), 1)[0]
        with self._backend() as be:
            be.load(program)
            self._note_where(be)
            diff = first_difference(_run(be, program, x), self._expected(program, [x])[0])
            if diff:
                raise _Failed(diff)
            st = be.stats()
        problems, ideal_sum, cycle_sum = [], 0, 0
        if len(st.layers) != program.num_layers:
            raise _Failed(f"{len(st.layers)} per-layer records for {program.num_layers} layers")
        for d, rec in zip(program.descriptors(), st.layers):
            if rec.cycles is None or rec.mac_cycles is None:
                problems.append(f"{rec.name}: no statistics record")
                continue
            cycle_sum += rec.cycles
            if rec.mac_cycles > rec.cycles:
                problems.append(f"{rec.name}: {rec.mac_cycles} MAC cycles > {rec.cycles} cycles")
            if d.op == Op.CONV:
                ideal = layout.ideal_conv_cycles(d.out_c, d.in_c, d.nnz, d.patterns if d.pps else 1,
                                                 d.out_h * d.out_w, program.hw.rows, program.hw.cols,
                                                 layout.desc_slot_shift(d))
                ideal_sum += ideal
                if rec.mac_cycles < ideal:
                    problems.append(f"{rec.name}: {rec.mac_cycles} MAC cycles < ideal {ideal}")
        if not st.cycles:
            problems.append("the run's CYCLES counter is 0")
        elif cycle_sum > st.cycles:
            problems.append(f"the layers' cycles sum to {cycle_sum} > the run's {st.cycles}")
        if st.mac_cycles != sum(rec.mac_cycles or 0 for rec in st.layers):
            problems.append(f"the layers' MAC cycles sum to {sum(rec.mac_cycles or 0 for rec in st.layers)}, the "
                            f"run's counter says {st.mac_cycles}")
        if problems:
            raise _Failed("; ".join(problems))
        modelled = " (modelled by the virtual board)" if st.modelled else ""
        return PASS, (f"{program.num_layers} layers: {st.cycles:,} cycles{modelled}, {st.mac_cycles:,} MAC-active, "
                      f"CONV ideal {ideal_sum:,} ({ideal_sum / st.cycles:.0%} of the cycles)")

    CHECKS = (("random layer programs", "check_random_programs"), ("demo model", "check_demo"),
              ("interrupt vs polling", "check_interrupt_vs_polling"), ("partial syncs", "check_partial_syncs"),
              ("counters vs ideal cycles", "check_counters"))

    def preflight(self) -> None:
        """BackendError (one message, before any check) when the backend cannot be used here at all."""
        if self.backend == "board":
            from ..backends.board import board_available
            ok, why = board_available()
            if not ok and not (self.options.get("overlay") and "no SPS overlay" in why):
                raise BackendError(f"no board to test: {why}. On a workstation, start the virtual ZCU104 "
                                   f"(`sps-pynq virtual-board --port 0`) and set SPS_PYNQ_REMOTE to the address it "
                                   f"prints")
        else:
            backend_class(self.backend)(**self.options).close()     # no C compiler, no Verilator, ...
        if self.reference == "sim":
            backend_class("sim")().close()                           # the reference needs a C compiler too

    def run(self, only: Optional[List[str]] = None) -> SelfTestReport:
        self.preflight()
        report = SelfTestReport(self.backend, self.reference, self.hw.name)
        for name, method in self.CHECKS:
            if only and name not in only:
                continue
            self.progress(name)
            t0 = time.perf_counter()
            try:
                out = getattr(self, method)()
                status, detail = out if isinstance(out, tuple) else (PASS, out)
            except _Failed as e:
                status, detail = FAIL, str(e)
            except SpsError as e:          # the backend refused or the device failed: this check fails
                status, detail = FAIL, f"{type(e).__name__}: {e}"
            report.checks.append(CheckResult(name, status, detail, time.perf_counter() - t0))
        report.where = self.where
        return report
