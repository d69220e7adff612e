"""BoardPool: one model on several boards. The scheduling rules on sim Sessions with injected failures (fast), and
the `multi_board` tests on two or three virtual ZCU104s on loopback ports through the unmodified pynq 4 remote
client: outputs equal `sim` in input order, and a board killed in the middle of a batch loses no input.

Nothing here waits on a wall-clock guess: the kill happens at a point the test reaches through the pool's own
on_result hook and the virtual core's CTRL register; the one timeout test blocks a board until it is released.
"""
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from layer_factory import random_packed_program
from sps_pynq.errors import BackendError, InputError, PoolError
from sps_pynq.hw.config import CONFIGS
from sps_pynq.runtime.pool import BoardPool
from sps_pynq.runtime.session import Session

HW = CONFIGS["zcu104"]
OVERLAY = Path(__file__).resolve().parents[1] / "overlays" / "virtual_zcu104"
WAIT = 120.0          # a safety net for waits on events that the test itself makes happen


@pytest.fixture(scope="module")
def program():
    return random_packed_program(np.random.default_rng(31), HW, n_layers=4, in_shape=(6, 9, 7))


def batch(program, n, seed=0):
    """n different float inputs (each distinct, so an output in the wrong place would show)."""
    return np.random.default_rng(seed).standard_normal((n,) + program.inputs[0].shape).astype(np.float32)


def sim_outputs(program, x):
    with Session(program, backend="sim") as s:
        return s.run(x)


class FaultySession(Session):
    """A sim Session that fails its `fail_at`-th run (1-based) with `error` (then sets `failed`), or blocks in its
    `block_at`-th run until `release` is set."""

    def __init__(self, program, fail_at=None, error=None, block_at=None, release=None):
        super().__init__(program, backend="sim")
        self.calls = 0
        self.fail_at, self.error, self.block_at = fail_at, error, block_at
        self.blocked = threading.Event()
        self.release = release or threading.Event()
        self.failed = threading.Event()

    def run(self, x, preprocess=True):
        self.calls += 1
        if self.calls == self.block_at:
            self.blocked.set()
            assert self.release.wait(WAIT)
        if self.calls == self.fail_at:
            self.failed.set()
            raise self.error
        return super().run(x, preprocess)


# -- the rules, on sim Sessions --------------------------------------------------------------------------------
def test_the_package_exports_it():
    import sps_pynq
    assert sps_pynq.BoardPool is BoardPool


def test_outputs_in_input_order_across_boards(program):
    x = batch(program, 11)
    seen = []
    with BoardPool(program, [Session(program, backend="sim") for _ in range(3)]) as pool:
        y = pool.run(x, on_result=lambda j, name: seen.append((j, name)))
        assert np.array_equal(y, sim_outputs(program, x))
        assert y.shape == (11,) + program.outputs[0].shape
        one = pool.run(x[4])                                       # a single (C,H,W) input
        assert np.array_equal(one, y[4:5])
        q = np.random.default_rng(1).integers(-128, 128, (5,) + program.inputs[0].shape).astype(np.int8)
        with Session(program, backend="sim") as s:
            assert np.array_equal(pool.run_int8(q), s.run_int8(q))
        st = pool.stats()
    assert sorted(j for j, _ in seen) == list(range(11))            # each input reported once
    assert sum(b["inputs"] for b in st) == 11 + 1 + 5 and all(b["alive"] for b in st)


def test_a_failing_board_is_taken_out_and_its_input_retried(program):
    x = batch(program, 9, seed=2)
    bad = FaultySession(program, fail_at=2, error=BackendError("run on board B failed (UNAVAILABLE: gone)"))
    good = FaultySession(program, block_at=1, release=bad.failed)   # waits in its first run until B has failed
    with BoardPool(program, [good, bad]) as pool:
        y = pool.run(x)
        assert np.array_equal(y, sim_outputs(program, x))
        assert pool.boards == ["0: sim"]
        (name, error), = pool.failed.items()
        assert name == "1: sim" and "UNAVAILABLE: gone" in error and error.startswith("input ")
        st = {b["board"]: b for b in pool.stats()}
        assert st["1: sim"]["inputs"] == 1 and st["0: sim"]["inputs"] == 8     # 9 inputs, each done once
        assert np.array_equal(pool.run(x[:3]), y[:3])                           # the pool goes on with one


def test_a_board_that_does_not_answer_times_out(program):
    """The board blocks in its second run until released (no answer at all, as on a lost network): after the
    pool's timeout it is out, its input done by the other board."""
    x = batch(program, 6, seed=3)
    silent = FaultySession(program, block_at=2)
    pool = BoardPool(program, [silent, Session(program, backend="sim")], timeout=3.0)

    def on_result(j, board):          # the other board waits here, holding no input, until the silent one is stuck
        if board == "1: sim":
            assert silent.blocked.wait(WAIT)
    try:
        y = pool.run(x, on_result=on_result)
        assert silent.blocked.is_set()
        assert np.array_equal(y, sim_outputs(program, x))
        (name, error), = pool.failed.items()
        assert name == "0: sim" and re.fullmatch(r"no answer for input \d+ within 3 s \(timeout\)", error)
        assert silent.calls == 2 and pool.stats()[1]["inputs"] == 5
    finally:
        silent.release.set()          # its late answer is dropped; its thread closes its Session
        pool.close()


def test_every_board_failing_is_one_error_naming_each(program):
    boards = [FaultySession(program, fail_at=1, error=BackendError(f"board {k} exploded")) for k in range(2)]
    with BoardPool(program, boards) as pool:
        with pytest.raises(PoolError) as e:
            pool.run(batch(program, 4))
        msg = str(e.value)
        assert "every board of the pool has failed; 0 of 4 inputs were done" in msg
        assert "0: sim: input" in msg and "board 0 exploded" in msg and "board 1 exploded" in msg
        with pytest.raises(PoolError, match="every board of the pool has failed"):
            pool.run(batch(program, 1))


def test_a_wrong_input_is_the_callers_error_and_boards_stay(program):
    with BoardPool(program, [Session(program, backend="sim") for _ in range(2)]) as pool:
        with pytest.raises(InputError, match="expected shape"):
            pool.run(np.zeros((2, 3, 3, 3), np.float32))
        bad = batch(program, 4)
        bad[2, 0, 0, 0] = np.nan
        with pytest.raises(InputError, match="NaN"):
            pool.run(bad)
        assert len(pool.boards) == 2 and not pool.failed
        assert np.array_equal(pool.run(batch(program, 3)), sim_outputs(program, batch(program, 3)))


def test_pool_refuses_what_cannot_work(program):
    other = random_packed_program(np.random.default_rng(32), HW, n_layers=2, in_shape=(6, 9, 7))
    with pytest.raises(PoolError, match="at least one board"):
        BoardPool(program, [])
    with pytest.raises(PoolError, match="listed twice"):
        BoardPool(program, ["127.0.0.1:9", "127.0.0.1:9"])
    with pytest.raises(PoolError, match="another model"):
        BoardPool(program, [Session(program, backend="sim"), Session(other, backend="sim")])
    with pytest.raises(PoolError, match="timeout"):
        BoardPool(program, [Session(program, backend="sim")], timeout=0)
    pool = BoardPool(program, [Session(program, backend="sim")])
    pool.close()
    with pytest.raises(PoolError, match="closed"):
        pool.run(batch(program, 1))


# -- multi_board: virtual ZCU104s on loopback ports ------------------------------------------------------------
@pytest.fixture
def virtual_boards(monkeypatch):
    pytest.importorskip("pynq")
    pytest.importorskip("grpc")
    from sps_pynq.virtual_board.server import VirtualBoard
    monkeypatch.setenv("SPS_PYNQ_OVERLAY", str(OVERLAY))
    monkeypatch.delenv("SPS_PYNQ_REMOTE", raising=False)
    started = []

    def start(n):
        for _ in range(n):
            started.append(VirtualBoard(host="127.0.0.1", port=0, faults=True).start())
        return started[-n:]
    yield start
    for vb in started:
        vb.stop()


def test_multi_board_pool_equals_sim_in_order_and_a_killed_board_loses_no_input(program, virtual_boards):
    """Three virtual boards. Board B does two inputs while A and C wait after their first; then B's core hangs
    in its third, the test stops B's server while that run is in flight, A and C go on. Every output equals
    sim's, in input order; B is out with its error; each input was done once by a live board."""
    from sps_pynq.hw.regmap import REG, CtrlBit
    a, b, c = virtual_boards(3)
    n = 16
    x = batch(program, n, seed=5)
    done = {a.address: 0, b.address: 0, c.address: 0}
    killed = threading.Event()

    def kill_b_while_it_runs():
        deadline = time.monotonic() + WAIT
        while not (b.core is not None and b.core.read(REG["CTRL"]) & CtrlBit.START):   # B's third run started
            assert time.monotonic() < deadline, "board B never started its third input"
            time.sleep(0.005)
        b.stop(grace=0)
        killed.set()

    def on_result(j, board):
        done[board] += 1
        if board == b.address and done[board] == 2:
            b.set_fault("hang")                  # before B takes its next input: that run never ends
            threading.Thread(target=kill_b_while_it_runs, daemon=True).start()
        elif board != b.address:
            assert killed.wait(WAIT)              # A and C hold nothing while they wait here

    with BoardPool(program, [a.address, b.address, c.address]) as pool:
        assert pool.boards == [a.address, b.address, c.address]
        y = pool.run(x, on_result=on_result)
        assert killed.is_set()
        assert np.array_equal(y, sim_outputs(program, x))
        assert pool.boards == [a.address, c.address]
        assert list(pool.failed) == [b.address]
        assert "run on" in pool.failed[b.address] and "failed" in pool.failed[b.address]
        st = {s["board"]: s for s in pool.stats()}
        assert st[b.address]["inputs"] == 2 and not st[b.address]["alive"]
        assert st[a.address]["inputs"] + st[c.address]["inputs"] == n - 2
        assert sum(done.values()) == n
        x2 = batch(program, 5, seed=6)                      # the pool goes on with two boards
        assert np.array_equal(pool.run(x2), sim_outputs(program, x2))


def test_multi_board_an_unreachable_board_is_reported_at_load(program, virtual_boards):
    import socket
    (a,) = virtual_boards(1)
    with socket.socket() as s:                    # a port nothing listens on (bound here, never listening)
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
        with BoardPool(program, [dead, a.address]) as pool:
            assert pool.boards == [a.address] and dead in pool.failed
            x = batch(program, 3, seed=7)
            assert np.array_equal(pool.run(x), sim_outputs(program, x))
        with pytest.raises(PoolError, match=f"no board of the pool could load.*{dead}"):
            BoardPool(program, [dead])


def test_a_board_address_is_checked(program):
    pytest.importorskip("pynq")
    from sps_pynq.backends.board import BoardBackend
    for bad, why in (("127.0.0.1:99999", "port 1..65535"), (":7967", "expected host"), ("h:x", "expected host")):
        with BoardBackend(device=bad) as be, pytest.raises(BackendError, match=why):
            be.load(program)


def test_virtual_core_run_seconds_is_a_lower_bound():
    """The bench's stand-in for FPGA time: a run of the virtual core lasts at least run_seconds (a sleep)."""
    pytest.importorskip("grpc")
    from sps_pynq.hw.regmap import REG, CtrlBit
    from sps_pynq.virtual_board.core import VirtualDdr, VirtualSpsCore
    core = VirtualSpsCore(HW, VirtualDdr(), run_seconds=0.2)
    t0 = time.monotonic()
    core.write(REG["CTRL"], CtrlBit.START)          # no arena: it ends with an error, after 0.2 s
    core.wait_idle(WAIT)
    assert time.monotonic() - t0 >= 0.2 and core.read(REG["CTRL"]) & CtrlBit.DONE


def test_an_error_in_on_result_ends_the_batch_and_the_pool_goes_on(program):
    def on_result(j, board):
        raise ValueError(f"callback broke at {j}")
    with BoardPool(program, [Session(program, backend="sim") for _ in range(2)]) as pool:
        with pytest.raises(ValueError, match="callback broke"):
            pool.run(batch(program, 5), on_result=on_result)
        assert len(pool.boards) == 2
        x = batch(program, 4, seed=9)
        assert np.array_equal(pool.run(x), sim_outputs(program, x))
