"""pynq's driver for the SPS core: a `DefaultIP` bound to the core's VLNV, so `Overlay(...).sps_core_0` is this.

    import sps_pynq.backends.board.ip_driver           # registers the driver with pynq (the board backend does)
    ol = pynq.Overlay("zcu104/sps.bit")                 # found by name: the pynq.overlays entry point
    core = ol.sps_core_0                                # SpsCoreDriver
    core.HW_ID, core.CTRL, core.registers()             # the registers by the names of sps_pynq/hw/regmap.py
    print(core.status())                                # every register, CTRL bits and ERROR_CODE decoded
    await core.wait_async(timeout=1.0)                  # PYNQ's convention: the coroutine, and a blocking wait()

pynq picks a driver by the IP's VLNV when it parses the .hwh, so this module must be imported before the Overlay
is created. The interrupt (the core's `irq_o`, through axi_intc_0 on a local board) is created on the interrupt
thread (irq.py), so that it can be awaited from any thread or loop; over PYNQ's remote protocol there are no
interrupts and `interrupt` is None. Programs are run by the board backend (`Session(..., backend="board")`),
which uses this driver's MMIO window and interrupt with an SpsCore of its own per model.

Torch- and onnx-free; imports pynq.
"""
from __future__ import annotations

import warnings

from ...hw.ip import CORE_VLNV
from ...hw.regmap import REG, REGISTERS
from ..aio import run_blocking
from .driver import SpsCore
from .irq import thread_interrupt

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pynq


def _register_property(name: str, access: str, doc: str):
    def get(self):
        return self.core.read(name)

    def put(self, value):
        self.core.write(name, value)
    return property(get, None if access == "ro" else put, doc=f"{name} ({access}): {doc}")


class SpsCoreDriver(pynq.DefaultIP):
    """The SPS core in an overlay (VLNV `CORE_VLNV`): registers by name, identity, status, waiting."""

    bindto = [CORE_VLNV]

    def __init__(self, description):
        description = dict(description)
        interrupts = description.pop("interrupts", {}) or {}     # created below, on the interrupt thread
        super().__init__(description)
        self.fullpath = description.get("fullpath", "sps_core")
        self.remote = bool(getattr(self.device, "has_capability", lambda c: False)("REMOTE"))
        self.interrupt = None
        self.interrupt_error = ""
        if interrupts and not self.remote:
            pin = next(iter(interrupts.values()))["fullpath"]
            try:
                self.interrupt = thread_interrupt(lambda: pynq.Interrupt(pin))
            except Exception as e:        # no UIO device for the controller, an overlay without axi_intc
                self.interrupt_error = f"{type(e).__name__}: {e}"
        elif interrupts:
            self.interrupt_error = "PYNQ's remote protocol has no interrupts"
        self._interrupts = interrupts
        where = f"{self.fullpath} at 0x{description['phys_addr']:x}"
        # Equal keys for every SpsCore of this core in the process (driver.py: the configuration they share).
        self.core_key = (id(self.device), int(description["phys_addr"]))
        self.core = SpsCore(self.mmio, where=where, interrupt=self.interrupt, key=self.core_key)

    # -- registers by name --------------------------------------------------------------------------------------
    def read_register(self, name: str) -> int:
        if name not in REG:
            raise KeyError(f"{name!r} is not a register of the SPS core ({', '.join(REG)})")
        return self.core.read(name)

    def write_register(self, name: str, value: int) -> None:
        if name not in REG:
            raise KeyError(f"{name!r} is not a register of the SPS core ({', '.join(REG)})")
        self.core.write(name, value)

    def registers(self) -> dict:
        """Every register by name."""
        return self.core.registers()

    def status(self) -> str:
        """Every register in hex, CTRL bits and the error code decoded."""
        return self.core.status_dump()

    def identify(self):
        return self.core.identify()

    # -- waiting, PYNQ style ------------------------------------------------------------------------------------
    async def wait_async(self, timeout: float = 10.0) -> int:
        """Wait for the run in progress to end (the interrupt when there is one, else polls); returns CTRL."""
        return await self.core.wait_async(timeout)

    def wait(self, timeout: float = 10.0) -> int:
        return run_blocking(self.wait_async(timeout))


for _r in REGISTERS:
    setattr(SpsCoreDriver, _r.name, _register_property(_r.name, _r.access, _r.doc))
del _r
