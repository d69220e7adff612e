"""Async in PYNQ's convention, the core's pynq driver, and what the board backend shares between Sessions.

- The interrupt as pynq delivers it: a fake pynq.Interrupt that, like pynq's UioController, binds to the event
  loop of the thread that creates it and fires on that loop only. Through irq.thread_interrupt it must be seen
  from a blocking call, a worker thread, a coroutine on another loop, and a blocking call inside a running loop
  (a Jupyter cell).
- On the virtual ZCU104: pynq.Overlay(...).sps_core_0 is SpsCoreDriver (bound to the core's VLNV) with the
  register names of hw/regmap.py; Session.run_async equals sim; two Sessions of one process alternating on one
  core get their own answers; a BUSY from the board is one BackendError naming the board.
"""
import asyncio
import threading
import time

import numpy as np
import pytest

from sps_pynq.backends.aio import run_blocking
from sps_pynq.backends.board.driver import SpsCore
from sps_pynq.backends.board.irq import thread_interrupt
from sps_pynq.hw.config import CONFIGS, HW_ID_MAGIC
from sps_pynq.hw.regmap import REG, REGISTERS, CtrlBit

NAMES = {r.offset: r.name for r in REGISTERS}


class UioLikeInterrupt:
    """Like pynq.Interrupt over pynq.uio.UioController: the loop is fixed at creation (get_event_loop() of the
    creating thread); the 'hardware' sets the event on that loop from its own thread."""

    def __init__(self):
        self.loop = asyncio.get_event_loop()
        self.event = asyncio.Event()
        self.waits = []

    def fire(self):
        self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self):
        assert asyncio.get_running_loop() is self.loop, "awaited on a loop pynq never delivers to"
        self.waits.append(threading.current_thread().name)
        self.event.clear()
        await self.event.wait()


class HardwareCore:
    """Registers of a core that finishes `seconds` after START (on a timer thread) and raises its interrupt."""

    def __init__(self, irq=None, seconds=0.02):
        self.regs = {r.offset: 0 for r in REGISTERS}
        self.regs[REG["HW_ID"]] = HW_ID_MAGIC
        self.regs[REG["CTRL"]] = CtrlBit.IDLE
        self.irq, self.seconds = irq, seconds

    def read(self, offset):
        return self.regs[offset]

    def write(self, offset, value):
        if NAMES[offset] == "CTRL" and value & CtrlBit.START:
            self.regs[offset] = CtrlBit.START

            def done():
                self.regs[offset] = CtrlBit.DONE | CtrlBit.IDLE
                if self.irq is not None:
                    self.irq.fire()
            threading.Timer(self.seconds, done).start()
        elif NAMES[offset] != "CTRL":
            self.regs[offset] = value


@pytest.fixture
def core_with_interrupt():
    irq = thread_interrupt(UioLikeInterrupt)
    hw = HardwareCore(irq.irq)
    drv = SpsCore(hw, where="fake", interrupt=irq)
    drv.configure(0x4000_0000, 0, 1, 0)
    return drv, irq.irq


def test_blocking_run_sees_the_interrupt(core_with_interrupt):
    drv, irq = core_with_interrupt
    t0 = time.monotonic()
    drv.run(timeout=5.0)
    assert drv.last_wait == "interrupt" and drv.last_polls == 1 and time.monotonic() - t0 < 2
    assert irq.waits == ["sps-irq"]


def test_coroutine_on_another_loop_sees_the_interrupt(core_with_interrupt):
    drv, irq = core_with_interrupt
    asyncio.run(drv.run_async(timeout=5.0))          # a new loop, not the one pynq bound the interrupt to
    assert drv.last_wait == "interrupt" and len(irq.waits) == 1


def test_blocking_run_inside_a_running_loop_sees_the_interrupt(core_with_interrupt):
    """A Jupyter cell: a loop runs in this thread, and the user calls the blocking run()."""
    drv, irq = core_with_interrupt

    async def cell():
        drv.run(timeout=5.0)
        return drv.last_wait
    assert asyncio.run(cell()) == "interrupt" and len(irq.waits) == 1


def test_worker_threads_share_one_core_in_turn(core_with_interrupt):
    drv, irq = core_with_interrupt
    errors = []

    def work():
        try:
            for _ in range(3):
                drv.run(timeout=5.0)
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(irq.waits) == 9


def test_run_blocking_returns_the_value_in_and_out_of_a_loop():
    async def answer():
        await asyncio.sleep(0)
        return 42
    assert run_blocking(answer()) == 42

    async def cell():
        return run_blocking(answer())
    assert asyncio.run(cell()) == 42


# -- on the virtual board ----------------------------------------------------------------------------------------

pynq_missing = pytest.importorskip("pynq") is None
grpc = pytest.importorskip("grpc")

from layer_factory import random_packed_program  # noqa: E402

from sps_pynq.errors import BackendError  # noqa: E402
from sps_pynq.runtime.session import Session  # noqa: E402
from sps_pynq.virtual_board.clients import Limits  # noqa: E402
from sps_pynq.virtual_board.server import VirtualBoard  # noqa: E402

HW = CONFIGS["zcu104"]


@pytest.fixture(scope="module")
def vboard():
    limits = Limits(busy_wait_seconds=0.5)
    mp = pytest.MonkeyPatch()
    with VirtualBoard(port=0, limits=limits) as vb:
        mp.setenv("SPS_PYNQ_REMOTE", vb.address)
        mp.delenv("SPS_PYNQ_OVERLAY", raising=False)        # found by name, through pynq
        try:
            yield vb
        finally:
            mp.undo()


def test_overlay_core_is_the_sps_driver_with_register_names(vboard):
    import pynq
    from sps_pynq.backends.board.discovery import find_overlay, get_device
    from sps_pynq.backends.board.ip_driver import SpsCoreDriver
    device = get_device(pynq)
    bit = find_overlay(boards=("virtual_zcu104",), device=device)
    assert bit is not None and bit.parent.name == "virtual_zcu104"
    ol = pynq.Overlay(str(bit), device=device)
    core = ol.sps_core_0
    assert isinstance(core, SpsCoreDriver)
    assert core.HW_ID == HW_ID_MAGIC and core.HW_CONFIG == HW.fingerprint
    assert core.read_register("HW_BUFFERS") == HW.buffers_word
    assert set(core.registers()) == {r.name for r in REGISTERS}
    assert "HW_ID" in core.status() and core.interrupt is None          # the remote protocol has no interrupts
    with pytest.raises(AttributeError):
        core.HW_ID = 1                                                   # read-only by the register map
    with pytest.raises(KeyError, match="not a register"):
        core.read_register("NOPE")


def test_session_run_async_equals_sim(vboard):
    program = random_packed_program(np.random.default_rng(5), HW, n_layers=4)
    x = np.random.default_rng(1).standard_normal((3,) + program.inputs[0].shape).astype(np.float32)
    with Session(program, backend="board") as board, Session(program, backend="sim") as sim:
        async def both():
            return await asyncio.gather(board.run_async(x), sim.run_async(x))
        got, want = asyncio.run(both())
        assert np.array_equal(got, want) and np.array_equal(board.run(x), want)
        assert board.last_run_info()[0]["wait"] == "poll"


def test_two_sessions_alternating_on_one_core_get_their_own_answers(vboard):
    """Both Sessions configure the core at load; without the per-core record the second configuration stays, and
    the first Session's runs compute the second's program (measured before the fix: wrong answers)."""
    pa = random_packed_program(np.random.default_rng(40), HW, n_layers=4)
    pb = random_packed_program(np.random.default_rng(41), HW, n_layers=3)
    rng = np.random.default_rng(2)
    with Session(pa, backend="board") as a, Session(pb, backend="board") as b, \
            Session(pa, backend="sim") as sa, Session(pb, backend="sim") as sb:
        for _ in range(3):
            xa = rng.integers(-128, 128, size=(1,) + pa.inputs[0].shape, dtype=np.int8)
            xb = rng.integers(-128, 128, size=(1,) + pb.inputs[0].shape, dtype=np.int8)
            assert np.array_equal(a.run_int8(xa), sa.run_int8(xa))
            assert np.array_equal(b.run_int8(xb), sb.run_int8(xb))
        assert a.stats()["reconfigured"] >= 2 and b.stats()["reconfigured"] >= 2


def test_busy_board_is_one_backend_error_naming_the_board(vboard):
    from pynq.remote import mmio_pb2, mmio_pb2_grpc
    from sps_pynq.hw.ip import CORE_BASE, CORE_RANGE
    program = random_packed_program(np.random.default_rng(8), HW, n_layers=3)
    with Session(program, backend="board") as s:
        other = grpc.insecure_channel(vboard.address, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = mmio_pb2_grpc.MmioStub(other)
        m = stub.get_mmio(mmio_pb2.GetMmioRequest(base_addr=CORE_BASE, length=CORE_RANGE)).mmio_id

        def write(name, value):
            stub.write(mmio_pb2.WriteRequest(mmio_id=m, offset=REG[name], data=int(value).to_bytes(4, "little")))
        vboard.set_fault("hang")
        try:
            write("CTRL", CtrlBit.START)                       # another client holds the core
            x = np.zeros((1,) + program.inputs[0].shape, np.int8)
            with pytest.raises(BackendError) as e:
                s.run_int8(x)
            msg = str(e.value)
            assert "ZCU104" in msg and "BUSY" in msg and "\n" not in msg.split("; ")[0], msg
        finally:
            write("CTRL", CtrlBit.SOFT_RESET)
            vboard.set_fault("none")
            other.close()
        s.run_int8(np.zeros((1,) + program.inputs[0].shape, np.int8))     # free again: runs
