"""The `board` backend: the SPS core on the FPGA, through pynq (Overlay, allocate, MMIO).

    load(program)   find and load the overlay, check HW_ID / HW_CONFIG / HW_BUFFERS against program.hw,
                    allocate ONE contiguous uint8 buffer for the arena, copy the image in once, point the core
                    at it (SpsCore.configure: 6 register writes)
    write / run / read   copy input in, sync it to the device, START, wait for DONE, sync out, read the output
    stats()         counters, per-layer records from the stats area, wall time

Where the overlay and the device come from: `discovery.py`. The register sequence: `driver.py`.

Torch- and onnx-free; pynq is imported only when the backend is used.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ...errors import BackendError, HardwareMismatchError, SpsError
from ...hw.config import HwConfig
from ...hw.descriptor import STATS_RECORD_BYTES
from ...hw.ip import CORE_INSTANCE, IP_NAME, VIRTUAL_BOARD_MARK, is_virtual_overlay
from ...program import Program
from ..base import Backend, arena_bytes, check_arena_range
from .discovery import OVERLAY_ENV, board_label, board_name, find_overlay, get_device, import_pynq, overlay_name
from ..stats import Stats, program_layers, program_stats, with_records
from ..aio import run_blocking
from .driver import SpsCore, parse_stats_records

TIMEOUT_ENV = "SPS_PYNQ_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CLOCK_MHZ = 100.0

# One loaded overlay per process, device and overlay file, so several Sessions share it.
_OVERLAYS: Dict[tuple, object] = {}

def cma_bytes(meminfo: str = "/proc/meminfo") -> Optional[Tuple[int, int]]:
    """(free, total) bytes of the kernel's contiguous memory (CMA), which pynq.allocate draws from on a local
    board; None when the kernel does not say."""
    try:
        text = Path(meminfo).read_text()
    except OSError:
        return None
    kb = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("CmaTotal", "CmaFree") and rest.split():
            kb[key] = int(rest.split()[0]) * 1024
    return (kb["CmaFree"], kb["CmaTotal"]) if len(kb) == 2 else None


def check_cma(arena_bytes: int, meminfo: str = "/proc/meminfo") -> None:
    """Refuse, before anything is allocated or copied, an arena larger than the board's free CMA."""
    cma = cma_bytes(meminfo)
    if cma is None or arena_bytes <= cma[0]:
        return
    free, total = cma
    mib = 1 << 20
    raise BackendError(f"the model's arena needs {arena_bytes / mib:.1f} MiB of contiguous memory, but the board's CMA "
                       f"has {free / mib:.1f} MiB free of {total / mib:.1f} MiB; free other pynq buffers (or restart "
                       f"the kernel that holds them), or boot with a larger CMA (cma=... on the kernel command line; "
                       f"PYNQ's ZCU104 image reserves 512 MiB, see docs/board.md)")


# The core's clock is pl_clk0 (hw_src/vivado/block_design.tcl). PLLs of the Zynq UltraScale+ PS a PL clock can
# come from (SRCSEL) and the control block holding their settings in the .hwh's PS parameters.
PL_CLOCK = 0
_PS_PLLS = {"IOPLL": "CRL_APB", "RPLL": "CRL_APB", "DPLL": "CRF_APB"}


def _ps_parameters(ip_dict) -> dict:
    for desc in ip_dict.values():
        if str(desc.get("type", "")).split(":")[2:3] == ["zynq_ultra_ps_e"]:
            return dict(desc.get("parameters") or {})
    return {}


def _pll_mhz(params: dict, pll: str) -> float:
    """A PS PLL's output as the .hwh configures it: PSS_REF_CLK x (FBDIV + FRACDATA when enabled) / (2 if DIV2)."""
    ctrl = f"PSU__{_PS_PLLS[pll]}__{pll}"
    fbdiv = float(params[f"{ctrl}_CTRL__FBDIV"])
    if str(params.get(f"{ctrl}_FRAC_CFG__ENABLED", "0")) == "1":
        fbdiv += float(params.get(f"{ctrl}_CTRL__FRACDATA", 0) or 0)
    div2 = 2 if str(params.get(f"{ctrl}_CTRL__DIV2", "0")) == "1" else 1
    return float(params["PSU__PSS_REF_CLK__FREQMHZ"]) * fbdiv / div2


def pl_clock_mhz(overlay, clocks=None) -> Tuple[float, str]:
    """The core's clock (pl_clk0) in MHz, and where it was read: the overlay's clock_dict `frequency` (pynqmetadata
    >= 0.2, PYNQ 4: the rate the design was built for), else `clocks.fclk0_mhz` (pynq.Clocks: the PL0_REF_CTRL
    register of a local board, after the download set it), else the clock's `divisor0`/`divisor1` (all that
    pynqmetadata 0.1.x, PYNQ 3, puts in clock_dict) applied to its PLL's rate from the PS parameters, else
    DEFAULT_CLOCK_MHZ."""
    try:
        clock = dict(overlay.clock_dict[PL_CLOCK])
    except Exception:
        clock = {}
    if clock.get("frequency"):
        return float(clock["frequency"]), "clock_dict frequency"
    if clocks is not None:
        try:
            mhz = float(getattr(clocks, f"fclk{PL_CLOCK}_mhz"))
            if mhz > 0:
                return mhz, "pynq.Clocks"
        except Exception:
            pass
    try:
        params = _ps_parameters(overlay.ip_dict)
        pll = clock.get("src_sel") or params[f"PSU__CRL_APB__PL{PL_CLOCK}_REF_CTRL__SRCSEL"]
        mhz = _pll_mhz(params, str(pll)) / int(clock["divisor0"]) / int(clock["divisor1"])
        return round(mhz, 6), f"{pll} / divisor0 / divisor1"
    except Exception:
        return DEFAULT_CLOCK_MHZ, "default (the overlay names no PL clock)"


def _macs(program: Program) -> Tuple[int, int]:
    """(nonzero, dense) MACs, or (0, 0) when a descriptor does not decode: the core reports that itself."""
    try:
        return program.conv_macs()
    except ValueError:
        return 0, 0


class BoardBackend(Backend):
    name = "board"

    def __init__(self, hw: Optional[HwConfig] = None, overlay: "str | os.PathLike | None" = None, device=None,
                 timeout: Optional[float] = None, use_interrupt: bool = True, download: Optional[bool] = None):
        super().__init__(hw)
        self._overlay_arg = overlay
        self._device_arg = device
        self._timeout = timeout if timeout is not None else float(os.environ.get(TIMEOUT_ENV, 0) or 0) or None
        self._use_interrupt = use_interrupt
        self._download = download
        self.core: Optional[SpsCore] = None
        self.buffer = None
        self.device = None
        self.overlay = None
        self.overlay_path: Optional[Path] = None
        self.virtual = False
        self.remote = False
        self._arena_address = 0
        self._dirty = []                # byte ranges written on the host since the last sync to the device
        self._device_newer = False      # the core wrote the arena since the host last synced from it
        self._expected_s = 0.0
        self._clock_mhz = DEFAULT_CLOCK_MHZ
        self._clock_source = "default"
        self._last = {}
        self._overlay_reused = False
        self.interrupt_note = ""

    # -- device and overlay ------------------------------------------------------------------------------------
    def _load_overlay(self, pynq, device, bit: Path, reuse: bool = True):
        key = (id(device), str(bit), bit.stat().st_mtime_ns, bit.with_suffix(".hwh").stat().st_mtime_ns)
        if reuse and key in _OVERLAYS and self._download is not True:
            self._overlay_reused = True
            return _OVERLAYS[key]
        self._overlay_reused = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")       # pynq warns about remote interrupts/GPIO we do not use
                ol = pynq.Overlay(str(bit), device=device, download=self._download is not False)
        except SpsError:
            raise
        except Exception as e:
            raise BackendError(f"loading overlay {bit} on {getattr(device, 'name', device)} failed: "
                               f"{type(e).__name__}: {e}") from e
        _OVERLAYS[key] = ol
        return ol

    def _is_virtual_board(self, device) -> bool:
        if not self.remote:
            return False
        try:
            return VIRTUAL_BOARD_MARK in device.read_file("/proc/version")
        except Exception:
            return False

    @staticmethod
    def _find_core(ip_dict) -> Tuple[str, dict]:
        for name, desc in ip_dict.items():
            vlnv = str(desc.get("type", ""))
            if name.split("/")[-1] == CORE_INSTANCE or vlnv.split(":")[2:3] == [IP_NAME]:
                if desc.get("phys_addr") is not None:
                    return name, desc
        raise BackendError(f"the overlay has no SPS core (no IP named {CORE_INSTANCE} or of type *:{IP_NAME}:*); "
                           f"its IPs are: {', '.join(sorted(ip_dict)) or 'none'}")

    def _core_driver(self, pynq, name: str, desc: dict) -> SpsCore:
        """An SpsCore of this backend's own on the overlay's driver of the core (`overlay.sps_core_0`, the
        SpsCoreDriver pynq bound to the core's VLNV): its MMIO window, its interrupt (local board only), and the
        key that makes every SpsCore of this core in the process share its configuration registers."""
        where = f"{name} at 0x{desc['phys_addr']:x} of overlay {self.overlay_path} on {board_label(self.device)}"
        ip = self.overlay
        try:
            for part in name.split("/"):
                ip = getattr(ip, part)
        except Exception:
            ip = None
        from .ip_driver import SpsCoreDriver
        if isinstance(ip, SpsCoreDriver):
            irq = ip.interrupt if self._use_interrupt else None
            self.interrupt_note = "interrupt" if irq is not None else (
                "polling: " + ("use_interrupt=False" if not self._use_interrupt else
                               ip.interrupt_error or "the .hwh connects no interrupt"))
            return SpsCore(ip.mmio, where=where, interrupt=irq, key=ip.core_key)
        self.interrupt_note = "polling: the overlay's core has no SpsCoreDriver"
        mmio = pynq.MMIO(desc["phys_addr"], desc["addr_range"], device=self.device)
        return SpsCore(mmio, where=where, key=(id(self.device), int(desc["phys_addr"])))

    # -- Backend interface -------------------------------------------------------------------------------------
    def load(self, program: Program) -> None:
        pynq = import_pynq()
        device = get_device(pynq, self._device_arg)
        self.device = device
        try:
            self._load(pynq, device, program)
        except SpsError:
            raise
        except Exception as e:          # pynq or its remote protocol (a gRPC error: BUSY, UNAVAILABLE, ...)
            raise self._device_failure("loading the model", e) from e

    def _load(self, pynq, device, program: Program) -> None:
        self.remote = bool(getattr(device, "has_capability", lambda c: False)("REMOTE"))
        on_virtual = self._is_virtual_board(device)
        board = board_name(device, self.remote)
        boards = (f"virtual_{board}",) if on_virtual else (board,)
        bit = find_overlay(self._overlay_arg, boards, device)
        if bit is None:
            raise BackendError(f"no SPS overlay for {board_label(device)}: pynq resolves no "
                               f"{' or '.join(overlay_name(b) for b in boards)} (the overlays installed with "
                               f"sps-pynq, `pynq.overlays` entry point); pass overlay=... or set ${OVERLAY_ENV} to a "
                               f"sps.bit with its sps.hwh (built by hw_src/vivado)")
        self.virtual = is_virtual_overlay(bit.with_suffix(".hwh"))
        self.overlay_path = bit
        if self.virtual and not on_virtual:
            raise BackendError(f"{bit} is the generated virtual overlay (no FPGA design inside); it runs only on the "
                               f"virtual board (`sps-pynq virtual-board`), not on {board_label(device)}: "
                               f"use the Vivado overlay overlays/zcu104/sps.bit")
        from . import ip_driver  # noqa: F401  (pynq binds SpsCoreDriver to the core's VLNV from here on)
        self.overlay = self._load_overlay(pynq, device, bit)
        name, desc = self._find_core(self.overlay.ip_dict)
        self.core = self._core_driver(pynq, name, desc)
        try:
            ident = self.core.identify()
        except HardwareMismatchError:
            if not self._overlay_reused:
                raise
            # This process loaded the overlay earlier, but the fabric no longer holds it (another process
            # loaded a different bitstream, or the board restarted): download it again, once.
            self.overlay = self._load_overlay(pynq, device, bit, reuse=False)
            self.core = self._core_driver(pynq, name, desc)
            ident = self.core.identify()
        ident = self.core.check(program.hw, ident, model=program.metadata.get("source", "the model"))
        self.hw = HwConfig.from_words(ident.config_word, ident.buffers_word, name=program.hw.name)
        self._clock_mhz, self._clock_source = pl_clock_mhz(self.overlay,
                                                           None if self.remote else getattr(pynq, "Clocks", None))

        self.close()
        if not self.remote:
            check_cma(program.arena_size)
        try:
            self.buffer = pynq.allocate((program.arena_size,), np.uint8, target=device)
        except Exception as e:
            raise BackendError(f"cannot allocate {program.arena_size} contiguous bytes for the arena on "
                               f"{getattr(device, 'name', device)} ({e}); free other buffers or raise the CMA "
                               f"size of the PYNQ image") from e
        image = np.frombuffer(program.image, dtype=np.uint8)
        self.buffer[:image.size] = image
        self.buffer[image.size:] = 0
        self.buffer.sync_to_device()
        self._dirty = []
        self._device_newer = False
        self._arena_address = int(self.buffer.device_address)     # one RPC on a remote device: cache it
        self.core.configure(self._arena_address, program.prog_offset, program.num_layers, program.stats_offset,
                            stats_enable=True, layer_names=[layer.name for layer in program.layers])
        sparse_macs, _ = _macs(program)
        self._expected_s = sparse_macs / (self.hw.rows * self.hw.cols) / (self._clock_mhz * 1e6)
        self.program = program

    def _need(self):
        if self.core is None or self.buffer is None or self.program is None:
            raise BackendError("board backend: load(program) first")

    def write(self, offset: int, data: np.ndarray) -> None:
        self._need()
        raw = arena_bytes(data)
        check_arena_range("write", offset, raw.size, self.buffer.size)
        if self._device_newer and self.remote:
            self._sync_from()          # a remote buffer syncs whole: keep the device's results in the local copy
        self.buffer[offset:offset + raw.size] = raw
        self._dirty.append((offset, offset + raw.size))

    def _sync_to(self) -> None:
        if not self._dirty:
            return
        if self.remote:
            self.buffer.sync_to_device()         # the remote protocol moves whole buffers
        else:
            for lo, hi in self._dirty:
                self.buffer[lo:hi].sync_to_device()
        self._dirty = []

    def _sync_from(self, lo: int = 0, hi: Optional[int] = None) -> None:
        if self.remote:
            self.buffer.sync_from_device()
            self._device_newer = False
        else:
            self.buffer[lo:hi].sync_from_device()

    def run(self) -> dict:
        return run_blocking(self.run_async())

    async def run_async(self) -> dict:
        """Sync the input to the device, START, and await the end of the run (the interrupt on a local board,
        polls of CTRL over the network) while the event loop runs other tasks."""
        self._need()
        t0 = time.perf_counter()
        try:
            self._sync_to()
        except Exception as e:
            raise self._device_failure("sync to the device", e) from e
        t1 = time.perf_counter()
        timeout = self._timeout or max(DEFAULT_TIMEOUT_S, 50 * self._expected_s)
        try:
            await self.core.run_async(timeout=timeout, expected_seconds=self._expected_s)
        except SpsError:
            raise
        except Exception as e:
            raise self._device_failure("run", e) from e
        finally:
            self._device_newer = True
        t2 = time.perf_counter()
        self._last = {"seconds": t2 - t0, "core_seconds": t2 - t1, "sync_to_device_seconds": t1 - t0,
                      "polls": self.core.last_polls, "wait": self.core.last_wait,
                      "reconfigured": self.core.reconfigured}
        return {"polls": self.core.last_polls, "wait": self.core.last_wait}

    def _device_failure(self, what: str, e: Exception) -> BackendError:
        """A failure of pynq or its remote protocol (a gRPC error such as the virtual board's BUSY) as one
        BackendError naming the board and what was being done."""
        detail = str(e)
        code = getattr(e, "code", None)
        if callable(code):
            try:
                details = e.details() if callable(getattr(e, "details", None)) else detail
                detail = f"{code().name}: {details}"
            except Exception:
                pass
        return BackendError(f"{what} on {board_label(self.device)} failed ({type(e).__name__}: "
                            f"{detail.splitlines()[0][:300] if detail else 'no detail'}); "
                            + ("the board is busy with another client's run: try again, or wait for it"
                               if "BUSY" in detail else "check the board and its connection, then load the model "
                               "again"))

    def read(self, offset: int, nbytes: int) -> np.ndarray:
        self._need()
        check_arena_range("read", offset, nbytes, self.buffer.size)
        if self._device_newer:
            t0 = time.perf_counter()
            try:
                if self.remote:
                    self._sync_from()
                else:
                    self._sync_from(offset, offset + nbytes)
            except Exception as e:
                raise self._device_failure("sync from the device", e) from e
            self._last["sync_from_device_seconds"] = self._last.get("sync_from_device_seconds", 0.0) + \
                time.perf_counter() - t0
        return np.array(self.buffer[offset:offset + nbytes]).view(np.int8)

    def stats(self) -> Stats:
        """The core's counters and per-layer records of the last run, MACs and bytes from the program."""
        self._need()
        p = self.program
        lo, hi = p.stats_offset, p.stats_offset + p.num_layers * STATS_RECORD_BYTES
        try:
            if self._device_newer:
                self._sync_from(lo, hi)
            counters = self.core.counters()
        except Exception as e:
            raise self._device_failure("reading the statistics", e) from e
        records = parse_stats_records(np.array(self.buffer[lo:hi]), p.num_layers)
        layers = with_records(program_layers(p), records, p.hw)
        extra = {"device": getattr(self.device, "name", str(self.device)), "overlay": str(self.overlay_path),
                 "virtual": self.virtual, "clock_mhz": self._clock_mhz, "clock_source": self._clock_source,
                 "waiting": self.interrupt_note,
                 **{k: v for k, v in self._last.items() if k != "seconds"}}
        if counters["cycles"]:
            extra["mac_utilization"] = counters["mac_cycles"] / counters["cycles"]
            extra["core_seconds_from_cycles"] = counters["cycles"] / (self._clock_mhz * 1e6)
        note = ("virtual board: cycle and byte counters are the virtual core's model of the SPS dataflow, not "
                "measurements") if self.virtual else "cycles and bytes are the core's own counters"
        return program_stats(self.name, layers, p.hw, seconds=self._last.get("seconds", 0.0), modelled=self.virtual,
                             note=note, extra=extra, **counters)

    def close(self) -> None:
        buf, self.buffer = self.buffer, None
        if buf is not None:
            try:
                buf.freebuffer()
            except Exception:
                pass
