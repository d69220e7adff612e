"""The gRPC server of the virtual ZCU104: the services PYNQ 4's RemoteDevice client calls.

    remote_device.RemoteDevice  existsfile / readfile / writefile (a small in-memory file system: /proc/version,
                                the board name, the FPGA manager files; writing the FPGA manager's firmware
                                file "loads" a bitstream), set_bitstream_attrs, shutdown, set_pl_clk, download
    mmio.Mmio                   get_mmio / read / write: the SPS core at CORE_BASE, every other address a plain
                                register file (with the ZCU104's PLL settings, which pynq's Clocks reads)
    buffer.RemoteBuffer         allocate / write / read / flush / invalidate / physical_address / freebuffer:
                                buffers in a virtual DDR that the core model reads and writes

The message and service definitions are pynq's own (pynq.remote.*_pb2), so the client is unmodified.

It is a network service shared by clients (clients.py: a client is one connection). Each client's buffers and
MMIO windows are its own; memory, files, registers and calls are capped (`Limits`); every request field is
range-checked; errors are gRPC status codes with a message. The one core is shared so that no client ever gets
another's answer: each client has its own view of the core's registers (what it configured, the status of its
own last run); START loads the starting client's configuration into the core and holds the core until that run
ends (DONE or ERROR, or a SOFT_RESET), and a START or a bitstream load from another client meanwhile waits up
to `Limits.busy_wait_seconds`, then fails with UNAVAILABLE "BUSY". Faults ("hang", "error CODE LAYER") are set
by the process that runs the server (`set_fault`, the CLI's --fault); clients may write FAULT_FILE only when
the server was started with `faults=True`.
"""
from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Dict, Optional, Tuple

import grpc
from pynq.remote import buffer_pb2, buffer_pb2_grpc, mmio_pb2, mmio_pb2_grpc
from pynq.remote import remote_device_pb2, remote_device_pb2_grpc

from ..hw.config import HwConfig, get_config
from ..hw.ip import CORE_BASE, CORE_RANGE, VIRTUAL_BOARD_MARK
from ..hw.regmap import REG, CtrlBit, ErrorCode
from .clients import Client, ClientTable, Limits, rpc
from .core import VirtualDdr, VirtualSpsCore
from .overlay import config_from_bin

__all__ = ["VirtualBoard", "VirtualBoardState", "Limits", "FAULT_FILE", "parse_fault"]

CHUNK = 2 * 1024 * 1024
FPGA_FIRMWARE = "/sys/class/fpga_manager/fpga0/firmware"
FPGA_FLAGS = "/sys/class/fpga_manager/fpga0/flags"
FIRMWARE_DIR = "/lib/firmware/"
FAULT_FILE = "/sps_virtual/fault"
ADDRESS_LIMIT = 1 << 40            # the ZynqMP's physical address space

# Values pynq's Clocks reads on a ZCU104 (33.333 MHz reference): IOPLL x90 / 2 = 1500 MHz, PL0 = IOPLL / 10.
_PLL_CTRL = 90 << 8 | 1 << 16
_INITIAL_REGS = {
    0xFF5E0020: _PLL_CTRL,                      # CRL_APB.IOPLL_CTRL
    0xFF5E0030: _PLL_CTRL,                      # CRL_APB.RPLL_CTRL
    0xFF5E00C0: 1 << 24 | 1 << 16 | 10 << 8,    # CRL_APB.PL0_REF_CTRL: CLKACT, DIVISOR1=1, DIVISOR0=10, IOPLL
    0xFF5E00C4: 1 << 16 | 15 << 8, 0xFF5E00C8: 1 << 16 | 15 << 8, 0xFF5E00CC: 1 << 16 | 15 << 8,
    0xFD1A0020: 72 << 8 | 1 << 16,              # CRF_APB.APLL_CTRL (1200 MHz)
    0xFD1A002C: 64 << 8 | 1 << 16,              # CRF_APB.DPLL_CTRL
    0xFD1A0038: 90 << 8 | 1 << 16,              # CRF_APB.VPLL_CTRL
    0xFD1A0060: 1 << 8,                         # CRF_APB.ACPU_CTRL
}

# The core's registers by role: each client writes and reads back its own configuration; status belongs to a
# run, so a client reads the core's while its run is the core's last one, else the status its last run left.
_CONFIG = ("GIE", "IER", "ARENA_LO", "ARENA_HI", "PROG_OFFSET", "NUM_LAYERS", "STATS_OFFSET", "STATS_ENABLE")
_STATUS = ("CTRL", "ISR", "ERROR_CODE", "CUR_LAYER", "CYCLES_LO", "CYCLES_HI", "MAC_CYCLES_LO", "MAC_CYCLES_HI",
           "STALL_CYCLES_LO", "STALL_CYCLES_HI", "BYTES_RD_LO", "BYTES_RD_HI", "BYTES_WR_LO", "BYTES_WR_HI")
_NAMES = {offset: name for name, offset in REG.items()}


class BoardError(Exception):
    """A request the board refuses: the gRPC status code and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def parse_fault(text: str):
    """The core's fault for the text of FAULT_FILE: None, "hang" or ("error", code, layer). ValueError else."""
    words = text.split()
    if words in ([], ["none"]):
        return None
    if words == ["hang"]:
        return "hang"
    if len(words) == 3 and words[0] == "error" and all(w.isdigit() and len(w) < 10 for w in words[1:]):
        code, layer = int(words[1]), int(words[2])
        if code in {int(c) for c in ErrorCode} - {0}:
            return ("error", code, layer)
    raise ValueError(f"fault {text[:60]!r}: write 'hang', 'error CODE LAYER' (CODE one of "
                     f"{', '.join(f'{int(c)} {c.name}' for c in ErrorCode if c)}; LAYER >= 0) or 'none'")


class VirtualBoardState:
    """Everything the board holds: files, the loaded bitstream, DDR, the core, the other registers, and who
    holds what."""

    def __init__(self, hw: Optional[HwConfig] = None, limits: Optional[Limits] = None, faults: bool = False,
                 run_seconds: float = 0.0):
        self.limits = limits or Limits()
        self.faults_enabled = faults         # may clients write FAULT_FILE
        self.run_seconds = run_seconds       # the least time a run of the core takes (VirtualSpsCore.run_seconds)
        self.lock = threading.RLock()
        self._start_lock = threading.Lock()   # one START or bitstream load waits for the core at a time
        self.default_hw = hw
        self.files: Dict[str, bytes] = {
            "/proc/version": b"Linux version 6.6.10-xilinx-v2024.1 (" + VIRTUAL_BOARD_MARK + b") aarch64 GNU/Linux\n",
            "/proc/device-tree/chosen/pynq_board": b"ZCU104\x00",
            "/sys/class/fpga_manager/fpga0/state": b"operating\n",
            FPGA_FLAGS: b"0\n",
            FAULT_FILE: b"none",
        }
        self.ddr = VirtualDdr()
        self.core: Optional[VirtualSpsCore] = None
        self.loaded: Optional[str] = None
        self.fault = None
        self.regs: Dict[int, int] = dict(_INITIAL_REGS)
        self.mmios: Dict[str, Tuple[int, int, str]] = {}      # id: (base, length, owner peer)
        self._mmio_ids = 0
        self.owners: Dict[str, str] = {}                      # buffer id: owner peer
        self.owner: Optional[Client] = None                   # the client whose run the core holds (or held last)
        self.table = ClientTable(self.limits, self.client_gone)
        if hw is not None:          # a board booted with the SPS overlay already in the fabric
            self.core = VirtualSpsCore(hw, self.ddr, self.run_seconds)

    # -- faults ------------------------------------------------------------------------------------------------
    def set_fault(self, text: str) -> None:
        """Set the core's fault (the operator's control; ValueError for text parse_fault refuses)."""
        fault = parse_fault(text)
        with self.lock:
            self.fault = fault
            self.files[FAULT_FILE] = text.encode()
            if self.core is not None:
                self.core.fault = fault

    # -- bitstream ---------------------------------------------------------------------------------------------
    def load_firmware(self, name: str) -> None:
        """Configure the fabric with /lib/firmware/NAME: waits for a run in progress (another client's), as
        START does; the clients' statuses stay readable."""
        def load():
            data = self.files.get(FIRMWARE_DIR + name)
            hw = config_from_bin(data) if data is not None else None
            self.loaded = name
            # A bitstream that is not a virtual SPS overlay leaves no SPS core: its registers read 0.
            self.core = VirtualSpsCore(hw, self.ddr, self.run_seconds) if hw is not None else None
            if self.core is not None:
                self.core.fault = self.fault
        self._with_idle_core(None, load)

    def _with_idle_core(self, client: Optional[Client], action) -> None:
        """Run `action` under the lock once the core runs nothing (or runs `client`'s program), after saving the
        status of the previous owner's run for it. BoardError BUSY after busy_wait_seconds."""
        wait = self.limits.busy_wait_seconds
        deadline = time.monotonic() + wait
        if not self._start_lock.acquire(timeout=wait):
            raise self._busy(wait)
        try:
            while True:
                with self.lock:
                    core = self.core
                    running = core is not None and core.read(REG["CTRL"]) & CtrlBit.START
                    if not running or (client is not None and self.owner is client):
                        if self.owner is not None and self.owner is not client and core is not None:
                            self.owner.status = {n: core.read(REG[n]) for n in _STATUS}
                            self.owner = None
                        action()
                        return
                if time.monotonic() >= deadline:
                    raise self._busy(wait)
                time.sleep(0.002)
        finally:
            self._start_lock.release()

    def _busy(self, wait: float) -> BoardError:
        holder = self.owner.peer if self.owner is not None else "another client"
        return BoardError(grpc.StatusCode.UNAVAILABLE, f"BUSY: the SPS core is running the program of {holder} "
                                                       f"for more than {wait:g} s; try again later")

    # -- the core, as one client sees it -----------------------------------------------------------------------
    def core_read(self, client: Client, offset: int) -> int:
        name = _NAMES.get(offset & ~3)
        with self.lock:
            core = self.core
            if core is None:
                return 0                        # no SPS core in the fabric: nothing answers
            if name in _CONFIG:
                return client.config.get(name, 0)
            if name in _STATUS and self.owner is not client:
                return client.status.get(name, int(CtrlBit.IDLE) if name == "CTRL" else 0)
            return core.read(offset)

    def core_write(self, client: Client, offset: int, value: int) -> None:
        name = _NAMES.get(offset & ~3)
        value &= 0xFFFFFFFF
        if name in _CONFIG:
            with self.lock:
                client.config[name] = value
            return
        if name == "CTRL" and value & CtrlBit.SOFT_RESET:
            with self.lock:
                if self.owner is client and self.core is not None:
                    self.core.write(offset, value)               # aborts its run
                client.status = {}
            return
        if name == "CTRL" and value & CtrlBit.START:
            def start():
                core = self.core
                if core is None:
                    return                      # no SPS core in the fabric: the write goes nowhere
                if not core.read(REG["CTRL"]) & CtrlBit.START:     # (a START while running changes nothing)
                    for n in _CONFIG:
                        core.write(REG[n], client.config.get(n, 0))
                    self.owner = client
                core.write(offset, value)
            self._with_idle_core(client, start)
            return
        if name == "ISR":
            with self.lock:
                if self.owner is client and self.core is not None:
                    self.core.write(offset, value)
                else:
                    client.status["ISR"] = client.status.get("ISR", 0) & ~value
        # other registers are read-only, as in the RTL

    # -- physical address space --------------------------------------------------------------------------------
    def _own_buffer(self, client: Client, address: int) -> Optional[Tuple[bytearray, int]]:
        """(buffer, offset) when `address` lies in a DDR buffer; BoardError if it is not the client's."""
        with self.ddr.lock:
            for bid, (phys, buf) in self.ddr.buffers.items():
                if phys <= address < phys + len(buf):
                    break
            else:
                return None
        if self.owners.get(bid) != client.peer:
            raise BoardError(grpc.StatusCode.PERMISSION_DENIED,
                             f"address 0x{address:x} lies in buffer {bid}, which another client allocated")
        return buf, address - phys

    def read32(self, client: Client, address: int) -> int:
        if CORE_BASE <= address < CORE_BASE + CORE_RANGE:
            return self.core_read(client, address - CORE_BASE)
        found = self._own_buffer(client, address)
        if found is not None:
            buf, off = found
            return int.from_bytes(bytes(buf[off:off + 4]).ljust(4, b"\0"), "little")
        with self.lock:
            return self.regs.get(address & ~3, 0)

    def write32(self, client: Client, address: int, value: int) -> None:
        if CORE_BASE <= address < CORE_BASE + CORE_RANGE:
            self.core_write(client, address - CORE_BASE, value)
            return
        found = self._own_buffer(client, address)
        if found is not None:
            buf, off = found
            buf[off:off + 4] = value.to_bytes(4, "little")[:len(buf) - off]
            return
        with self.lock:
            key = address & ~3
            if key not in self.regs and len(self.regs) >= self.limits.registers + len(_INITIAL_REGS):
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"the virtual board holds {self.limits.registers} written registers already")
            self.regs[key] = value & 0xFFFFFFFF

    # -- buffers -----------------------------------------------------------------------------------------------
    def allocate(self, client: Client, size: int) -> Tuple[str, int]:
        lim = self.limits
        if not 0 < size <= lim.buffer_bytes:
            raise BoardError(grpc.StatusCode.INVALID_ARGUMENT if size <= 0 else grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"cannot allocate {size} bytes: a buffer is 1..{lim.buffer_bytes} bytes here")
        with self.lock:
            if len(client.buffers) >= lim.buffers_per_client:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"this client holds {len(client.buffers)} buffers, the most the virtual board "
                                 f"gives one client; free some")
            if client.buffer_bytes + size > lim.buffer_bytes:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"cannot allocate {size} bytes: this client holds {client.buffer_bytes} of the "
                                 f"{lim.buffer_bytes} bytes one client may hold")
            in_use = sum(len(b) for _, b in self.ddr.buffers.values())
            if in_use + size > lim.ddr_bytes:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"cannot allocate {size} bytes: {in_use} of the virtual DDR's {lim.ddr_bytes} "
                                 f"bytes are in use")
            try:
                bid, phys = self.ddr.allocate(size)
            except MemoryError as e:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)) from None
            self.owners[bid] = client.peer
            client.buffers.add(bid)
            client.buffer_bytes += size
            return bid, phys

    def buffer(self, client: Client, bid: str) -> Tuple[int, bytearray]:
        """(physical address, bytes) of the client's buffer `bid`."""
        with self.lock:
            entry = self.ddr.buffers.get(bid)
            if entry is None:
                raise BoardError(grpc.StatusCode.NOT_FOUND, f"no buffer {bid!r} (freed, or its client "
                                                            f"disconnected)")
            if self.owners.get(bid) != client.peer:
                raise BoardError(grpc.StatusCode.PERMISSION_DENIED, f"buffer {bid!r} belongs to another client")
            return entry

    def free(self, client: Client, bid: str) -> None:
        with self.lock:
            _, buf = self.buffer(client, bid)
            self.ddr.free(bid)
            del self.owners[bid]
            client.buffers.discard(bid)
            client.buffer_bytes -= len(buf)

    # -- MMIO windows ------------------------------------------------------------------------------------------
    def open_mmio(self, client: Client, base: int, length: int) -> str:
        if not (0 < length <= 1 << 32 and base + length <= ADDRESS_LIMIT):
            raise BoardError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"MMIO window 0x{base:x} + {length} bytes: a window is 1 byte..4 GiB inside the "
                             f"40-bit physical address space")
        with self.lock:
            if len(client.mmios) >= self.limits.mmio_windows_per_client:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"this client opened {len(client.mmios)} MMIO windows, the most the virtual board "
                                 f"gives one client")
            self._mmio_ids += 1
            mid = f"mmio{self._mmio_ids}"
            self.mmios[mid] = (base, length, client.peer)
            client.mmios.add(mid)
            return mid

    def window(self, client: Client, mid: str, offset: int, nbytes: int) -> int:
        """The physical address of [offset, offset + nbytes) of the client's MMIO window `mid`."""
        with self.lock:
            win = self.mmios.get(mid)
        if win is None:
            raise BoardError(grpc.StatusCode.NOT_FOUND, f"no MMIO window {mid!r}")
        base, length, owner = win
        if owner != client.peer:
            raise BoardError(grpc.StatusCode.PERMISSION_DENIED, f"MMIO window {mid!r} belongs to another client")
        if offset + nbytes > length:
            raise BoardError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"offset 0x{offset:x} (+{nbytes}) lies outside the MMIO window of {length} bytes")
        return base + offset

    # -- files -------------------------------------------------------------------------------------------------
    def write_file(self, client: Client, path: str, data: bytes) -> None:
        if path == FAULT_FILE:
            if not self.faults_enabled:
                raise BoardError(grpc.StatusCode.PERMISSION_DENIED,
                                 "fault injection is off on this virtual board; start it with faults enabled "
                                 "(VirtualBoard(faults=True)) to let clients set faults")
            try:
                self.set_fault(data.decode("ascii", errors="replace"))
            except ValueError as e:
                raise BoardError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
            return
        with self.lock:
            others = sum(len(v) for k, v in self.files.items() if k != path)
            if path not in self.files and len(self.files) >= self.limits.files:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"the virtual board holds {len(self.files)} files, its most")
            if others + len(data) > self.limits.files_bytes:
                raise BoardError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"{path}: {len(data)} bytes do not fit: {others} of the virtual board's "
                                 f"{self.limits.files_bytes} bytes of files are in use")
            self.files[path] = data
        if path == FPGA_FIRMWARE:
            self.load_firmware(data.decode(errors="replace").strip("\0\n "))

    # -- clients that went away --------------------------------------------------------------------------------
    def client_gone(self, client: Client) -> None:
        """Free what a disconnected client held; abort its run if the core still runs it."""
        with self.lock:
            for bid in list(client.buffers):
                self.ddr.free(bid)
                self.owners.pop(bid, None)
            client.buffers.clear()
            client.buffer_bytes = 0
            for mid in client.mmios:
                self.mmios.pop(mid, None)
            client.mmios.clear()
            if self.owner is client:
                if self.core is not None and self.core.read(REG["CTRL"]) & CtrlBit.START:
                    self.core.write(REG["CTRL"], CtrlBit.SOFT_RESET)
                self.owner = None


def _writable(path: str) -> bool:
    """What pynq writes: a bitstream into /lib/firmware, the FPGA manager's files; and the fault file."""
    if path in (FPGA_FIRMWARE, FPGA_FLAGS, FAULT_FILE):
        return True
    name = path[len(FIRMWARE_DIR):] if path.startswith(FIRMWARE_DIR) else ""
    return 0 < len(name) <= 255 and "/" not in name and name not in (".", "..")


def _abort(context, e: BoardError):
    context.abort(e.code, f"virtual board: {e}")


class _Device(remote_device_pb2_grpc.RemoteDeviceServicer):
    def __init__(self, state: VirtualBoardState):
        self.s = state
        self.table = state.table

    @rpc
    def existsfile(self, request, context, client):
        path = request.file_path
        with self.s.lock:
            exists = path in self.s.files or any(f.startswith(path.rstrip("/") + "/") for f in self.s.files)
        return remote_device_pb2.ExistsFileResponse(exists=exists)

    @rpc
    def readfile(self, request, context, client):
        with self.s.lock:
            data = self.s.files.get(request.file_path)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.file_path}: no such file on the virtual board")
        for i in range(0, max(len(data), 1), CHUNK):
            yield remote_device_pb2.ReadFileResponse(data=data[i:i + CHUNK])

    @rpc
    def writefile(self, request_iterator, context, client):
        path, parts, size = None, [], 0
        for req in request_iterator:
            if path is None:
                path = req.file_path
                if not _writable(path):
                    context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                  f"{path}: read-only on the virtual board (writable: {FIRMWARE_DIR}NAME, "
                                  f"{FPGA_FIRMWARE}, {FPGA_FLAGS}, {FAULT_FILE})")
            elif req.file_path != path:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"one write names two files ({path}, "
                                                                f"{req.file_path})")
            size += len(req.data)
            if size > self.s.limits.file_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{path}: more than {self.s.limits.file_bytes} bytes, the largest file the virtual "
                              f"board holds")
            parts.append(req.data)
        if self.table.expired(context):     # cancelled (too slow): the stream may just end, keep nothing
            context.abort(grpc.StatusCode.CANCELLED, "the write was cancelled; nothing was written")
        if path is not None:
            try:
                self.s.write_file(client, path, b"".join(parts))
            except BoardError as e:
                _abort(context, e)
        return remote_device_pb2.WriteFileResponse()

    @rpc
    def set_bitstream_attrs(self, request, context, client):
        return remote_device_pb2.SetBitstreamAttrsResponse(status=True)

    @rpc
    def shutdown(self, request, context, client):
        return remote_device_pb2.ShutdownResponse(status=True)

    @rpc
    def set_pl_clk(self, request, context, client):
        return remote_device_pb2.SetPlClkResponse(status=True)

    @rpc
    def download(self, request_iterator, context, client):
        for _ in request_iterator:          # nothing is kept; the call is timed like every other
            pass
        return remote_device_pb2.DownloadResponse(status=True)


class _Mmio(mmio_pb2_grpc.MmioServicer):
    def __init__(self, state: VirtualBoardState):
        self.s = state
        self.table = state.table

    @rpc
    def get_mmio(self, request, context, client):
        try:
            mid = self.s.open_mmio(client, request.base_addr, request.length)
        except BoardError as e:
            _abort(context, e)
        return mmio_pb2.GetMmioResponse(status=True, mmio_id=mid)

    @rpc
    def read(self, request, context, client):
        length = request.length or 4
        if length not in (1, 2, 4, 8):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"MMIO reads are 1, 2, 4 or 8 bytes, not {length}")
        try:
            address = self.s.window(client, request.mmio_id, request.offset, length)
            if length == 8:
                lo, hi = self.s.read32(client, address), self.s.read32(client, address + 4)
                value = (lo << 32 | hi) if request.word_order == "big" else (hi << 32 | lo)
            else:
                value = self.s.read32(client, address) & ((1 << (8 * length)) - 1)
        except BoardError as e:
            _abort(context, e)
        return mmio_pb2.ReadResponse(status=True, data=value)

    @rpc
    def write(self, request, context, client):
        data = request.data
        if len(data) % 4 or not 0 < len(data) <= self.s.limits.mmio_write_bytes:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"MMIO writes are whole 32-bit words, 4.."
                                                            f"{self.s.limits.mmio_write_bytes} bytes, not {len(data)}")
        try:
            address = self.s.window(client, request.mmio_id, request.offset, len(data))
            for i in range(0, len(data), 4):
                self.s.write32(client, address + i, int.from_bytes(data[i:i + 4], "little"))
        except BoardError as e:
            _abort(context, e)
        return mmio_pb2.WriteResponse(status=True)


class _Buffer(buffer_pb2_grpc.RemoteBufferServicer):
    def __init__(self, state: VirtualBoardState):
        self.s = state
        self.table = state.table

    def _get(self, context, client, bid):
        try:
            return self.s.buffer(client, bid)
        except BoardError as e:
            _abort(context, e)

    @rpc
    def allocate(self, request, context, client):
        try:
            bid, _ = self.s.allocate(client, request.size)
        except BoardError as e:
            _abort(context, e)
        return buffer_pb2.AllocateResponse(buffer_id=bid)

    @rpc
    def write(self, request_iterator, context, client):
        pos = 0
        for req in request_iterator:
            _, buf = self._get(context, client, req.buffer_id)
            n = len(req.data)
            if req.start < 0 or req.end < 0:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"negative start/end {req.start}/{req.end}")
            if req.start or req.end:            # an explicit range; pynq itself streams chunks in order from 0
                if req.end - req.start != n:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"start/end {req.start}/{req.end} do not span "
                                                                    f"the {n} bytes sent")
                at = req.start
            else:
                at = pos
            if at + n > len(buf):
                context.abort(grpc.StatusCode.OUT_OF_RANGE, f"write of {n} bytes at {at} overruns buffer "
                                                            f"{req.buffer_id!r} of {len(buf)} bytes")
            buf[at:at + n] = req.data
            pos = at + n
        return buffer_pb2.BufferWriteResponse()

    @rpc
    def read(self, request, context, client):
        _, buf = self._get(context, client, request.buffer_id)
        start = request.start
        end = request.end if request.end else len(buf)
        if not 0 <= start <= end <= len(buf):
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"read of [{start}, {end}) from buffer "
                                                        f"{request.buffer_id!r} of {len(buf)} bytes")
        for i in range(start, max(end, start + 1), CHUNK):
            yield buffer_pb2.BufferReadResponse(data=bytes(buf[i:min(i + CHUNK, end)]))

    @rpc
    def freebuffer(self, request, context, client):
        try:
            self.s.free(client, request.buffer_id)
        except BoardError as e:
            _abort(context, e)
        return buffer_pb2.FreeBufferResponse()

    @rpc
    def flush(self, request, context, client):
        self._get(context, client, request.buffer_id)
        return buffer_pb2.FlushResponse()

    @rpc
    def invalidate(self, request, context, client):
        self._get(context, client, request.buffer_id)
        return buffer_pb2.InvalidateResponse()

    @rpc
    def physical_address(self, request, context, client):
        phys, _ = self._get(context, client, request.buffer_id)
        return buffer_pb2.AddressResponse(address=phys)

    @rpc
    def virtual_address(self, request, context, client):
        phys, _ = self._get(context, client, request.buffer_id)
        return buffer_pb2.AddressResponse(address=0xFFFF_0000_0000 + phys)

    @rpc
    def cacheable(self, request, context, client):
        self._get(context, client, request.buffer_id)
        return buffer_pb2.CacheableResponse(cacheable=True)


class VirtualBoard:
    """A running virtual ZCU104.

        with VirtualBoard(port=0) as board:          # 0: a free port, see board.port
            os.environ["SPS_PYNQ_REMOTE"] = f"127.0.0.1:{board.port}"
            ...

    faults: let clients set faults through FAULT_FILE (tests); `set_fault` works either way.
    limits: the caps and timeouts of clients.Limits; `workers` overrides limits.workers.
    run_seconds: every run of the core lasts at least this long, sleeping (a stand-in for FPGA time; 0: none).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, hw: "str | HwConfig | None" = None,
                 workers: Optional[int] = None, faults: bool = False, limits: Optional[Limits] = None,
                 run_seconds: float = 0.0):
        if not run_seconds >= 0:
            raise ValueError(f"run_seconds must be >= 0, got {run_seconds!r}")
        limits = limits or Limits()
        if workers is not None:
            import dataclasses
            limits = dataclasses.replace(limits, workers=workers)
        self.limits = limits
        self.state = VirtualBoardState(get_config(hw) if hw is not None else None, limits, faults, run_seconds)
        self.host = host
        size = limits.message_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="vboard"),
            maximum_concurrent_rpcs=2 * limits.workers,
            options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
                     ("grpc.so_reuseport", 0), ("grpc.keepalive_time_ms", 60_000),
                     ("grpc.keepalive_timeout_ms", 20_000), ("grpc.http2.max_pings_without_data", 0)])
        remote_device_pb2_grpc.add_RemoteDeviceServicer_to_server(_Device(self.state), self._server)
        mmio_pb2_grpc.add_MmioServicer_to_server(_Mmio(self.state), self._server)
        buffer_pb2_grpc.add_RemoteBufferServicer_to_server(_Buffer(self.state), self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port} (in use?)")
        self._started = False

    @property
    def core(self) -> Optional[VirtualSpsCore]:
        return self.state.core

    @property
    def clients(self) -> ClientTable:
        return self.state.table

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_fault(self, text: str) -> None:
        self.state.set_fault(text)

    def start(self) -> "VirtualBoard":
        self._server.start()
        self.state.table.start()
        self._started = True
        return self

    def stop(self, grace: float = 0.5) -> None:
        if self._started:
            self._server.stop(grace).wait(5)
            self.state.table.stop()
            self._started = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
