"""`sps-pynq selftest`: sim against the numpy reference, the board backend on the virtual ZCU104 (overlay found by
name, no $SPS_PYNQ_OVERLAY), and what it reports when a backend computes a wrong byte or the core fails."""
import json
import os

import numpy as np
import pytest

from sps_pynq.cli import main
from sps_pynq.testing.selftest import FAIL, PASS, SKIP, SelfTest, first_difference


def statuses(report):
    return {c.name: c.status for c in report.checks}


def test_first_difference():
    a = np.arange(10, dtype=np.int8)
    assert first_difference(a, a.copy()) == ""
    b = a.copy()
    b[[3, 7]] = 0
    assert first_difference(b, a) == "2 of 10 bytes differ, the first at byte 3 (got 0, expected 3)"
    assert "9 bytes where 10" in first_difference(a[:9], a)


def test_sim_against_the_numpy_reference():
    report = SelfTest("sim", programs=3, digits=40).run()
    assert report.passed and report.reference == "ref"
    assert statuses(report) == {"random layer programs": PASS, "demo model": PASS, "interrupt vs polling": SKIP,
                                "partial syncs": PASS, "counters vs ideal cycles": SKIP}
    assert "40 digits" in report.checks[1].detail


def test_a_wrong_byte_fails_the_checks_that_read_it(monkeypatch):
    from sps_pynq.backends.sim import SimBackend
    real = SimBackend.read

    def read(self, offset, nbytes):
        out = real(self, offset, nbytes).copy()
        out[0] ^= 1                                   # one bit of every read is wrong
        return out
    monkeypatch.setattr(SimBackend, "read", read)
    report = SelfTest("sim", programs=2, digits=10).run()
    assert not report.passed
    got = statuses(report)
    assert got["random layer programs"] == got["demo model"] == got["partial syncs"] == FAIL
    assert "program 0" in report.checks[0].detail and "differ" in report.checks[0].detail
    assert "selftest FAIL" in report.table()


def test_cli_table_and_exit_code_on_sim(capsys):
    assert main(["selftest", "--backend", "sim", "--programs", "2", "--digits", "20"]) == 0
    out = capsys.readouterr().out
    assert "selftest PASS: 3 passed, 0 failed, 2 skipped (sim against ref)" in out
    assert main(["selftest", "--backend", "sim", "--programs", "1", "--digits", "5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["counts"] == {"PASS": 3, "FAIL": 0, "SKIP": 2}


@pytest.mark.parametrize("args, fragment", [(["--programs", "0"], "--programs 0"), (["--digits", "0"], "--digits 0"),
                                            (["--backend", "sim", "--overlay", "x.bit"], "--overlay applies")])
def test_bad_options_are_one_line(args, fragment, capsys):
    assert main(["selftest"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0]


def test_no_board_is_one_line(monkeypatch, capsys):
    for name in ("SPS_PYNQ_REMOTE", "PYNQ_REMOTE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    if os.path.exists("/proc/device-tree/chosen/pynq_board"):
        pytest.skip("this machine is a PYNQ board")
    assert main(["selftest"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no board to test" in err[0] and "virtual-board" in err[0]


@pytest.fixture
def virtual_board(monkeypatch):
    pytest.importorskip("pynq")
    pytest.importorskip("grpc")
    from sps_pynq.virtual_board.server import VirtualBoard
    with VirtualBoard(host="127.0.0.1", port=0) as vb:
        monkeypatch.setenv("SPS_PYNQ_REMOTE", vb.address)
        monkeypatch.delenv("SPS_PYNQ_OVERLAY", raising=False)       # the overlay is found by name through pynq
        yield vb


def test_board_on_the_virtual_board(virtual_board, capsys):
    assert main(["selftest", "--programs", "3", "--digits", "60"]) == 0
    out = capsys.readouterr().out
    assert "board against sim on" in out and "virtual_zcu104/sps.bit" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    for name in ("random layer programs", "demo model", "partial syncs", "counters vs ideal cycles"):
        assert " PASS " in lines[name], lines[name]
    # PYNQ's remote protocol has no interrupts: both runs polled, which the check says instead of passing
    assert " SKIP " in lines["interrupt vs polling"] and "remote protocol has no interrupts" in out
    assert "modelled by the virtual board" in lines["counters vs ideal cycles"]


def test_a_failing_core_fails_the_selftest(virtual_board, capsys):
    from sps_pynq.hw.regmap import ErrorCode
    virtual_board.set_fault(f"error {int(ErrorCode.BAD_SHAPE)} 0")
    try:
        assert main(["selftest", "--programs", "1", "--digits", "5"]) == 1
    finally:
        virtual_board.set_fault("none")
    out = capsys.readouterr().out
    assert out.count(" FAIL ") >= 4 and "BAD_SHAPE" in out and "selftest FAIL" in out


@pytest.mark.slow
@pytest.mark.rtl
def test_rtl_against_sim():
    pytest.importorskip("cocotb")
    report = SelfTest("rtl", programs=1, layers=3, digits=1).run()
    got = statuses(report)
    assert report.passed, report.table()
    assert got["counters vs ideal cycles"] == PASS and got["demo model"] == PASS


class FakeBoard:
    """The sim backend dressed as a board whose interrupt is wired (or not), for the interrupt check's verdicts:
    a real board's interrupt cannot be reached from here (PYNQ's remote protocol has none)."""

    def __init__(self, wired, interrupt_run_ends_by="interrupt", use_interrupt=True, **options):
        from sps_pynq.backends.sim import SimBackend
        self.sim = SimBackend()
        self.device, self.overlay_path, self.virtual = "fake board", "fake.bit", False
        self.interrupt_note = "interrupt" if use_interrupt and wired else "polling: the .hwh connects no interrupt"
        self.ends_by = interrupt_run_ends_by if self.interrupt_note == "interrupt" else "poll"

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def run(self):
        self.sim.run()
        return {"wait": self.ends_by, "polls": 1}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sim.close()


@pytest.mark.parametrize("wired, ends_by, verdict", [(True, "interrupt", PASS), (False, None, SKIP),
                                                     (True, "poll", FAIL)])
def test_interrupt_check_verdicts(monkeypatch, wired, ends_by, verdict):
    from sps_pynq.testing import selftest
    test = SelfTest("board")
    monkeypatch.setattr(test, "_backend", lambda **extra: FakeBoard(wired, ends_by, **extra))
    try:
        status, detail = test.check_interrupt_vs_polling()
    except selftest._Failed as e:
        status, detail = FAIL, str(e)
    assert status == verdict, detail
    if verdict == FAIL:
        assert "the interrupt is connected, but the run's end was seen by 'poll'" in detail
