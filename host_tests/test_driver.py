"""SpsCore (sps_pynq.backends.board.driver) against a fake register file: sequence, checks, timeout, errors,
access count."""
import numpy as np
import pytest

from sps_pynq.errors import DeviceError, DeviceTimeoutError, HardwareMismatchError
from sps_pynq.hw.config import CONFIGS, HW_ID_MAGIC, HwConfig
from sps_pynq.hw.regmap import REG, REGISTERS, CtrlBit, ErrorCode
from sps_pynq.backends.board.driver import SpsCore, parse_stats_records

NAMES = {r.offset: r.name for r in REGISTERS}


class FakeCore:
    """Registers of a core that finishes `polls_to_finish` CTRL reads after START (never if None)."""

    def __init__(self, hw=CONFIGS["zcu104"], polls_to_finish=1, error=None, hw_id=HW_ID_MAGIC):
        self.regs = {r.offset: 0 for r in REGISTERS}
        self.regs[REG["HW_ID"]] = hw_id
        self.regs[REG["HW_CONFIG"]] = hw.fingerprint
        self.regs[REG["HW_BUFFERS"]] = hw.buffers_word
        self.regs[REG["CTRL"]] = CtrlBit.IDLE
        self.polls_to_finish = polls_to_finish
        self.error = error            # (code, layer) reported at the end of a run
        self.log = []                 # ("r"|"w", name, value)
        self._left = None

    def read(self, offset):
        name = NAMES[offset]
        if name == "CTRL" and self._left is not None:
            self._left -= 1
            if self._left <= 0:
                self._left = None
                ctrl = CtrlBit.DONE | CtrlBit.IDLE
                if self.error:
                    ctrl |= CtrlBit.ERROR
                    self.regs[REG["ERROR_CODE"]], self.regs[REG["CUR_LAYER"]] = self.error
                self.regs[offset] = ctrl
        self.log.append(("r", name, self.regs[offset]))
        return self.regs[offset]

    def write(self, offset, value):
        name = NAMES[offset]
        self.log.append(("w", name, value))
        if name == "CTRL":
            if value & CtrlBit.START:
                self.regs[offset] = CtrlBit.START
                self._left = self.polls_to_finish if self.polls_to_finish is not None else float("inf")
            if value & CtrlBit.SOFT_RESET:
                self.regs[offset] = CtrlBit.IDLE
                self._left = None
            return
        self.regs[offset] = value


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += max(s, 1e-6)


def make(core, **kw):
    clock = FakeClock()
    return SpsCore(core, where="sps_core_0 (fake)", clock=clock, sleep=clock.sleep, **kw), clock


def test_configure_writes_the_program_registers_once():
    core = FakeCore()
    drv, _ = make(core)
    drv.check(CONFIGS["zcu104"])
    drv.configure(0x1_2345_6740, prog_offset=128, num_layers=7, stats_offset=4096)
    writes = [(n, v) for op, n, v in core.log if op == "w"]
    assert writes == [("ARENA_LO", 0x2345_6740), ("ARENA_HI", 1), ("PROG_OFFSET", 128), ("NUM_LAYERS", 7),
                      ("STATS_OFFSET", 4096), ("STATS_ENABLE", 1)]
    assert [n for op, n, _ in core.log if op == "r"] == ["HW_ID", "HW_CONFIG", "HW_BUFFERS"]


def test_misaligned_arena_is_refused():
    drv, _ = make(FakeCore())
    with pytest.raises(DeviceError, match="64-byte"):
        drv.configure(0x1000_0010, 0, 1, 0)


def test_run_touches_one_write_and_few_reads():
    core = FakeCore(polls_to_finish=1)
    drv, _ = make(core)
    drv.configure(0x4000_0000, 0, 3, 512)
    core.log.clear()
    drv.run(timeout=1.0)
    assert core.log == [("w", "CTRL", CtrlBit.START), ("r", "CTRL", CtrlBit.DONE | CtrlBit.IDLE)]
    # a longer run: polling backs off, so accesses grow slowly with run time
    slow = FakeCore(polls_to_finish=None)
    drv2, clock = make(slow)
    finish_at = 0.5
    real_read = slow.read

    def read(offset):
        if NAMES[offset] == "CTRL" and clock.t >= finish_at:
            slow.regs[offset] = CtrlBit.DONE
            slow._left = None
        return real_read(offset)
    slow.read = read
    drv2.run(timeout=5.0, expected_seconds=0.45)
    reads = sum(1 for op, n, _ in slow.log if op == "r")
    assert 1 <= reads <= 12, slow.log


def test_mismatch_message_names_both_configurations():
    core = FakeCore(hw=CONFIGS["zcu104"])
    drv, _ = make(core)
    with pytest.raises(HardwareMismatchError) as e:
        drv.check(CONFIGS["small"], model="tiny.spsmodel")
    msg = str(e.value)
    assert "tiny.spsmodel" in msg and "2x4" in msg and "16x16" in msg and "zcu104" in msg
    assert f"0x{CONFIGS['zcu104'].fingerprint:08x}" in msg and f"0x{CONFIGS['small'].fingerprint:08x}" in msg


def test_not_an_sps_core_is_refused():
    drv, _ = make(FakeCore(hw_id=0))
    with pytest.raises(HardwareMismatchError, match="HW_ID reads 0x00000000"):
        drv.check(CONFIGS["zcu104"])


def test_timeout_dumps_every_register_and_soft_resets():
    core = FakeCore(polls_to_finish=None)
    drv, clock = make(core)
    drv.configure(0x4000_0000, 0, 3, 512, layer_names=["conv1", "pool1", "fc"])
    core.regs[REG["CUR_LAYER"]] = 1
    with pytest.raises(DeviceTimeoutError) as e:
        drv.run(timeout=0.25)
    msg = str(e.value)
    for r in REGISTERS:
        assert r.name in msg
    assert "layer 1 (pool1)" in msg and "0.25 s" in msg and "[START]" in msg
    assert 0.25 <= clock.t < 0.3
    assert core.log[-1] == ("w", "CTRL", CtrlBit.SOFT_RESET)


@pytest.mark.parametrize("code", list(ErrorCode)[1:])
def test_error_names_layer_and_code(code):
    core = FakeCore(polls_to_finish=2, error=(int(code), 2))
    drv, _ = make(core)
    drv.configure(0x4000_0000, 0, 3, 512, layer_names=["conv1", "conv2", "conv3"])
    with pytest.raises(DeviceError) as e:
        drv.run(timeout=1.0)
    msg = str(e.value)
    assert "layer 2 (conv3)" in msg and code.name in msg and code.text in msg


def test_unknown_error_code():
    core = FakeCore(error=(99, 0))
    drv, _ = make(core)
    with pytest.raises(DeviceError, match="unknown error code 99"):
        drv.run(timeout=1.0)


class FakeInterrupt:
    """pynq.Interrupt's shape: a coroutine wait(); fires at once, or never."""

    def __init__(self, fires=True):
        self.fires = fires
        self.waits = 0

    async def wait(self):
        import asyncio
        self.waits += 1
        if not self.fires:
            await asyncio.sleep(3600)


def test_interrupt_wait_reads_ctrl_once_and_clears_isr():
    core = FakeCore(polls_to_finish=1)
    irq = FakeInterrupt()
    drv, _ = make(core, interrupt=irq)
    drv.configure(0x4000_0000, 0, 1, 0)
    assert ("w", "IER", 3) in core.log and ("w", "GIE", 1) in core.log
    core.log.clear()
    drv.run(timeout=2.0)
    assert core.log == [("w", "CTRL", CtrlBit.START), ("r", "CTRL", CtrlBit.DONE | CtrlBit.IDLE), ("w", "ISR", 3)]
    assert irq.waits == 1 and drv.last_wait == "interrupt"


def test_interrupt_that_never_comes_times_out():
    core = FakeCore(polls_to_finish=None)
    drv = SpsCore(core, where="sps_core_0 (fake)", interrupt=FakeInterrupt(fires=False))
    drv.configure(0x4000_0000, 0, 1, 0)
    with pytest.raises(DeviceTimeoutError):
        drv.run(timeout=0.1)


def test_counters_combine_lo_hi():
    core = FakeCore()
    core.regs[REG["CYCLES_LO"]], core.regs[REG["CYCLES_HI"]] = 5, 2
    core.regs[REG["MAC_CYCLES_LO"]] = 3
    core.regs[REG["BYTES_WR_HI"]] = 1
    drv, _ = make(core)
    c = drv.counters()
    assert c == {"cycles": (2 << 32) + 5, "mac_cycles": 3, "stall_cycles": 0, "bytes_read": 0,
                 "bytes_written": 1 << 32}


def test_decode_round_trips_every_named_config():
    for cfg in CONFIGS.values():
        assert HwConfig.from_words(cfg.fingerprint, cfg.buffers_word).same_hardware(cfg)


def test_stats_records():
    raw = np.array([[100, 80, 5, 0], [50, 0, 10, 0]], dtype="<u4").view(np.uint8).reshape(-1)
    recs = parse_stats_records(raw, 2, ["a", "b"])
    assert recs[0] == {"index": 0, "name": "a", "cycles": 100, "mac_cycles": 80, "stall_cycles": 5,
                       "utilization": 0.8}
    assert recs[1]["stall_cycles"] == 10 and recs[1]["utilization"] == 0.0


def test_without_interrupt_it_polls():
    core = FakeCore(polls_to_finish=3)
    drv, _ = make(core)
    drv.configure(0x4000_0000, 0, 1, 0)
    core.log.clear()
    drv.run(timeout=1.0)
    assert [n for op, n, _ in core.log] == ["CTRL", "CTRL", "CTRL", "CTRL"] and drv.last_polls == 3
    assert drv.last_wait == "poll"


def test_arena_larger_than_the_free_cma_is_refused_before_allocating(tmp_path):
    import pytest
    from sps_pynq.backends.board.backend import check_cma, cma_bytes
    from sps_pynq.errors import BackendError
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2029876 kB\nCmaTotal:         524288 kB\nCmaFree:          100000 kB\n")
    assert cma_bytes(str(meminfo)) == (100000 * 1024, 524288 * 1024)
    check_cma(100000 * 1024, str(meminfo))
    with pytest.raises(BackendError, match=r"needs 97\.7 MiB .* 97\.7 MiB free of 512\.0 MiB"):
        check_cma(100000 * 1024 + 1, str(meminfo))
    meminfo.write_text("MemTotal:        2029876 kB\n")            # a kernel without CMA: nothing to check
    check_cma(1 << 40, str(meminfo))


def test_two_drivers_of_one_core_rewrite_the_configuration_when_the_other_configured_it():
    """Two SpsCores with one key (two Sessions on one board): the core holds one configuration; each run of
    one after the other configured writes its own again first, and only then."""
    core = FakeCore(polls_to_finish=1)
    a = SpsCore(core, where="a", key=("test", "one core"))
    b = SpsCore(core, where="b", key=("test", "one core"))
    a.configure(0x4000_0000, 0, 3, 512)
    b.configure(0x5000_0000, 64, 5, 1024)
    core.log.clear()
    a.run(timeout=1.0)
    writes = [(n, v) for op, n, v in core.log if op == "w"]
    assert writes[:5] == [("ARENA_LO", 0x4000_0000), ("ARENA_HI", 0), ("PROG_OFFSET", 0), ("NUM_LAYERS", 3),
                          ("STATS_OFFSET", 512)] and writes[-1] == ("CTRL", CtrlBit.START)
    assert a.reconfigured == 1
    core.log.clear()
    a.run(timeout=1.0)                       # a again: the core still holds a's program
    assert [(n, v) for op, n, v in core.log if op == "w"] == [("CTRL", CtrlBit.START)]
    b.run(timeout=1.0)
    assert core.regs[REG["ARENA_LO"]] == 0x5000_0000 and core.regs[REG["NUM_LAYERS"]] == 5 and b.reconfigured == 1
    c = SpsCore(core, where="c")             # another core (no key): never rewrites
    c.configure(0x6000_0000, 0, 1, 0)
    b.run(timeout=1.0)
    assert b.reconfigured == 1


def test_run_async_awaits_the_interrupt_and_lets_the_loop_run():
    import asyncio
    core = FakeCore(polls_to_finish=1)
    irq = FakeInterrupt()
    drv = SpsCore(core, where="fake", interrupt=irq)
    drv.configure(0x4000_0000, 0, 1, 0)
    ticks = []

    async def ticker():
        for _ in range(3):
            ticks.append(1)
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(drv.run_async(timeout=1.0), ticker())
    asyncio.run(main())
    assert irq.waits == 1 and drv.last_wait == "interrupt" and len(ticks) == 3
