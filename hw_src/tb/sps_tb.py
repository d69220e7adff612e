"""Testbench of sps_top in the manner of verilog-axi's: a TB class with the clock, the AXI4-Lite master that
plays the driver, an AXI RAM that plays DDR, reset, and back-pressure generators on every AXI channel.

Used by the cocotb tests in this folder and by the `rtl` backend (sps_pynq/backends/rtl.py).
"""
from __future__ import annotations

import itertools
import logging
import random
from typing import Iterable, List, Optional

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from sps_pynq.hw.descriptor import (DESC_BYTES, STATS_RECORD_BYTES, Descriptor, decode_stats_records,
                                    pack_program)
from sps_pynq.hw.regmap import REG, CtrlBit

ARENA_BASE = 0x10000          # where the arena sits in the simulated DDR


def no_pause():
    return itertools.repeat(0)


def random_pause(seed: int, busy: float = 0.5):
    rng = random.Random(seed)
    while True:
        yield int(rng.random() < busy)


def bursty_pause(seed: int):
    """Long stalls now and then: latency spikes, as a DDR refresh or a busy interconnect causes."""
    rng = random.Random(seed)
    while True:
        if rng.random() < 0.02:
            for _ in range(rng.randint(5, 40)):
                yield 1
        yield 0


class TB:
    def __init__(self, dut, ram_size: int = 1 << 22, period_ns: int = 4):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk_i, period_ns, unit="ns").start())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk_i, dut.rst_ni,
                                  reset_active_level=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk_i, dut.rst_ni, reset_active_level=False,
                          size=ram_size)
        for bus in ("s_axil", "m_axi"):     # one log line per AXI transaction is far too much here
            logging.getLogger(f"cocotb.{dut._name}.{bus}").setLevel(logging.ERROR)
        # Error injection: reads or writes touching [poison[0], poison[1]) get SLVERR.
        self.poison = None
        read, write = self.ram.read_if._read, self.ram.write_if._write

        async def poisoned_read(address, length):
            self._check_poison(address, length)
            return await read(address, length)

        async def poisoned_write(address, data):
            self._check_poison(address, len(data))
            await write(address, data)
        self.ram.read_if._read, self.ram.write_if._write = poisoned_read, poisoned_write

    def _check_poison(self, address: int, length: int) -> None:
        if self.poison and address < self.poison[1] and address + length > self.poison[0]:
            raise IOError(f"injected AXI error at {address:#x}")

    def set_backpressure(self, make_gen=None) -> None:
        """make_gen(channel_index) -> generator of 0/1 (1 = stall); None removes the pauses."""
        channels = [self.ram.write_if.aw_channel, self.ram.write_if.w_channel, self.ram.write_if.b_channel,
                    self.ram.read_if.ar_channel, self.ram.read_if.r_channel]
        for j, ch in enumerate(channels):
            ch.set_pause_generator(make_gen(j) if make_gen else None)
            if not make_gen:
                ch.pause = False    # the generator stops where it is: a channel paused then would stay paused

    async def reset(self, cycles: int = 4) -> None:
        self.dut.rst_ni.value = 0
        await ClockCycles(self.dut.clk_i, cycles)
        self.dut.rst_ni.value = 1
        await ClockCycles(self.dut.clk_i, 2)

    async def read_reg(self, name: str) -> int:
        return await self.axil.read_dword(REG[name])

    async def write_reg(self, name: str, value: int) -> None:
        await self.axil.write_dword(REG[name], value & 0xFFFFFFFF)

    async def read_reg64(self, name: str) -> int:
        lo = await self.read_reg(name + "_LO")
        hi = await self.read_reg(name + "_HI")
        return lo | hi << 32

    # ------------------------------------------------------------------------------------------------
    def place_program(self, arena: np.ndarray, descs: List[Descriptor], base: int = ARENA_BASE):
        """Copy the arena to DDR with the descriptors and a stats region after it. Returns (prog_offset,
        stats_offset) relative to the arena base."""
        prog_offset = (arena.size + 127) // 128 * 128
        stats_offset = prog_offset + len(descs) * DESC_BYTES
        self.ram.write(base, arena.tobytes())
        self.ram.write(base + prog_offset, pack_program(descs))
        self.ram.write(base + stats_offset, bytes([0xA5]) * (STATS_RECORD_BYTES * len(descs) + 64))
        return prog_offset, stats_offset

    async def start(self, prog_offset: int, num_layers: int, stats_offset: int = 0, stats: bool = False,
                    base: int = ARENA_BASE) -> None:
        await self.write_reg("ARENA_LO", base)
        await self.write_reg("ARENA_HI", base >> 32)
        await self.write_reg("PROG_OFFSET", prog_offset)
        await self.write_reg("NUM_LAYERS", num_layers)
        await self.write_reg("STATS_OFFSET", stats_offset)
        await self.write_reg("STATS_ENABLE", int(stats))
        await self.write_reg("GIE", 1)
        await self.write_reg("IER", 3)
        await self.write_reg("CTRL", CtrlBit.START)

    async def wait_irq(self, timeout_cycles: int = 1_000_000, poll: int = 64) -> int:
        """Wait for the interrupt; returns the cycles waited. Raises on timeout (the core must never hang)."""
        waited = 0
        while not int(self.dut.irq_o.value):
            await ClockCycles(self.dut.clk_i, poll)
            waited += poll
            if waited > timeout_cycles:
                raise TimeoutError(f"no interrupt after {waited} cycles (CTRL={await self.read_reg('CTRL'):#x})")
        return waited

    async def finish(self) -> dict:
        """After the interrupt: status and counters, ISR cleared."""
        out = {"ctrl": await self.read_reg("CTRL"), "isr": await self.read_reg("ISR"),
               "error_code": await self.read_reg("ERROR_CODE"), "cur_layer": await self.read_reg("CUR_LAYER")}
        for name in ("CYCLES", "MAC_CYCLES", "STALL_CYCLES", "BYTES_RD", "BYTES_WR"):
            out[name.lower()] = await self.read_reg64(name)
        await self.write_reg("ISR", 3)
        return out

    async def run(self, arena: np.ndarray, descs: List[Descriptor], stats: bool = False,
                  base: int = ARENA_BASE, timeout_cycles: int = 1_000_000) -> dict:
        """Run a program; returns the status dict with 'arena' (the arena after the run) and 'layer_stats'."""
        prog_offset, stats_offset = self.place_program(arena, descs, base)
        await self.start(prog_offset, len(descs), stats_offset, stats, base)
        await self.wait_irq(timeout_cycles)
        out = await self.finish()
        out["arena"] = np.frombuffer(self.ram.read(base, arena.size), dtype=np.uint8).copy()
        raw = self.ram.read(base + stats_offset, STATS_RECORD_BYTES * len(descs))
        out["layer_stats"] = decode_stats_records(raw, len(descs))
        out["stats_tail"] = self.ram.read(base + stats_offset + STATS_RECORD_BYTES * len(descs), 64)
        return out


def first_difference(got: np.ndarray, want: np.ndarray, descs: Iterable[Descriptor]) -> Optional[str]:
    """None when equal, else a readable description of the first wrong byte (which layer's output, where)."""
    bad = np.flatnonzero(got != want)
    if bad.size == 0:
        return None
    pos = int(bad[0])
    where = "outside every output (an overrun)"
    for j, d in enumerate(descs):
        n = d.out_c * d.out_h * d.out_w
        if d.out_offset <= pos < d.out_offset + n:
            rel = pos - d.out_offset
            c, rest = divmod(rel, d.out_h * d.out_w)
            y, x = divmod(rest, d.out_w)
            where = f"layer {j} ({d.op.name}) output c={c} y={y} x={x}"
            break
    return (f"{bad.size} bytes differ; first at arena offset {pos}: got {int(got[pos].astype(np.int8))}, "
            f"want {int(want[pos].astype(np.int8))}, {where}")
