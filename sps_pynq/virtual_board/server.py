"""The gRPC server of the virtual ZCU104: the services PYNQ 4's RemoteDevice client calls.

    remote_device.RemoteDevice  existsfile / readfile / writefile (a small in-memory file system: /proc/version,
                                the board name, the FPGA manager files; writing the FPGA manager's firmware
                                file "loads" a bitstream), set_bitstream_attrs, shutdown, set_pl_clk, download
    mmio.Mmio                   get_mmio / read / write: the SPS core at CORE_BASE, every other address a plain
                                register file (with the ZCU104's PLL settings, which pynq's Clocks reads)
    buffer.RemoteBuffer         allocate / write / read / flush / invalidate / physical_address / freebuffer:
                                buffers in a virtual DDR that the core model reads and writes

The message and service definitions are pynq's own (pynq.remote.*_pb2), so the client is unmodified.
Control for tests: write "hang", "error <code> <layer>" or "none" to FAULT_FILE (or set `board.core.fault`).
"""
from __future__ import annotations

import threading
from concurrent import futures
from typing import Dict, Optional

import grpc
from pynq.remote import buffer_pb2, buffer_pb2_grpc, mmio_pb2, mmio_pb2_grpc
from pynq.remote import remote_device_pb2, remote_device_pb2_grpc

from ..hw.config import HwConfig, get_config
from ..hw.ip import CORE_BASE, CORE_RANGE, VIRTUAL_BOARD_MARK
from .core import VirtualDdr, VirtualSpsCore
from .overlay import config_from_bin

CHUNK = 2 * 1024 * 1024
FPGA_FIRMWARE = "/sys/class/fpga_manager/fpga0/firmware"
FAULT_FILE = "/sps_virtual/fault"

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


class VirtualBoardState:
    """Everything the board holds: files, the loaded bitstream, DDR, the core, the other registers."""

    def __init__(self, hw: Optional[HwConfig] = None):
        self.lock = threading.Lock()
        self.default_hw = hw
        self.files: Dict[str, bytes] = {
            "/proc/version": b"Linux version 6.6.10-xilinx-v2024.1 (" + VIRTUAL_BOARD_MARK + b") aarch64 GNU/Linux\n",
            "/proc/device-tree/chosen/pynq_board": b"ZCU104\x00",
            "/sys/class/fpga_manager/fpga0/state": b"operating\n",
            "/sys/class/fpga_manager/fpga0/flags": b"0\n",
            FAULT_FILE: b"none",
        }
        self.ddr = VirtualDdr()
        self.core: Optional[VirtualSpsCore] = None
        self.loaded: Optional[str] = None
        self.regs: Dict[int, int] = dict(_INITIAL_REGS)
        self.mmios: Dict[str, tuple] = {}
        if hw is not None:          # a board booted with the SPS overlay already in the fabric
            self.core = VirtualSpsCore(hw, self.ddr)

    # -- bitstream ---------------------------------------------------------------------------------------------
    def load_firmware(self, name: str) -> None:
        data = self.files.get("/lib/firmware/" + name)
        hw = config_from_bin(data) if data is not None else None
        with self.lock:
            self.loaded = name
            # A bitstream that is not a virtual SPS overlay leaves no SPS core: its registers read 0.
            self.core = VirtualSpsCore(hw, self.ddr) if hw is not None else None
            self._apply_fault_locked()

    def set_fault(self, text: str) -> None:
        self.files[FAULT_FILE] = text.encode()
        with self.lock:
            self._apply_fault_locked()

    def _apply_fault_locked(self) -> None:
        if self.core is None:
            return
        words = self.files.get(FAULT_FILE, b"none").decode(errors="replace").split()
        if words[:1] == ["hang"]:
            self.core.fault = "hang"
        elif words[:1] == ["error"] and len(words) == 3:
            self.core.fault = ("error", int(words[1]), int(words[2]))
        else:
            self.core.fault = None

    # -- physical address space --------------------------------------------------------------------------------
    def read32(self, address: int) -> int:
        core = self.core
        if CORE_BASE <= address < CORE_BASE + CORE_RANGE:
            return core.read(address - CORE_BASE) if core is not None else 0
        found = self.ddr.find(address)
        if found is not None:
            buf, off = found
            return int.from_bytes(bytes(buf[off:off + 4]).ljust(4, b"\0"), "little")
        return self.regs.get(address & ~3, 0)

    def write32(self, address: int, value: int) -> None:
        core = self.core
        if CORE_BASE <= address < CORE_BASE + CORE_RANGE:
            if core is not None:
                core.write(address - CORE_BASE, value)
            return
        found = self.ddr.find(address)
        if found is not None:
            buf, off = found
            buf[off:off + 4] = value.to_bytes(4, "little")[:len(buf) - off]
            return
        self.regs[address & ~3] = value & 0xFFFFFFFF


class _Device(remote_device_pb2_grpc.RemoteDeviceServicer):
    def __init__(self, state: VirtualBoardState):
        self.s = state

    def existsfile(self, request, context):
        path = request.file_path
        exists = path in self.s.files or any(f.startswith(path.rstrip("/") + "/") for f in self.s.files)
        return remote_device_pb2.ExistsFileResponse(exists=exists)

    def readfile(self, request, context):
        data = self.s.files.get(request.file_path)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.file_path}: no such file on the virtual board")
        for i in range(0, max(len(data), 1), CHUNK):
            yield remote_device_pb2.ReadFileResponse(data=data[i:i + CHUNK])

    def writefile(self, request_iterator, context):
        path, parts = None, []
        for req in request_iterator:
            path = req.file_path
            parts.append(req.data)
        if path is not None:
            data = b"".join(parts)
            if path == FAULT_FILE:
                self.s.set_fault(data.decode(errors="replace"))
            else:
                self.s.files[path] = data
            if path == FPGA_FIRMWARE:
                self.s.load_firmware(data.decode(errors="replace").strip("\0\n "))
        return remote_device_pb2.WriteFileResponse()

    def set_bitstream_attrs(self, request, context):
        return remote_device_pb2.SetBitstreamAttrsResponse(status=True)

    def shutdown(self, request, context):
        return remote_device_pb2.ShutdownResponse(status=True)

    def set_pl_clk(self, request, context):
        return remote_device_pb2.SetPlClkResponse(status=True)

    def download(self, request_iterator, context):
        for _ in request_iterator:
            pass
        return remote_device_pb2.DownloadResponse(status=True)


class _Mmio(mmio_pb2_grpc.MmioServicer):
    def __init__(self, state: VirtualBoardState):
        self.s = state
        self._next = 0

    def get_mmio(self, request, context):
        with self.s.lock:
            self._next += 1
            mid = f"mmio{self._next}"
            self.s.mmios[mid] = (request.base_addr, request.length)
        return mmio_pb2.GetMmioResponse(status=True, mmio_id=mid)

    def _window(self, mmio_id, offset, nbytes):
        win = self.s.mmios.get(mmio_id)
        if win is None:
            return None, f"unknown mmio_id {mmio_id!r}"
        base, length = win
        if offset < 0 or offset + nbytes > length:
            return None, f"offset 0x{offset:x} (+{nbytes}) outside the MMIO window of {length} bytes"
        return base + offset, ""

    def read(self, request, context):
        length = request.length or 4
        address, msg = self._window(request.mmio_id, request.offset, length)
        if msg:
            return mmio_pb2.ReadResponse(status=False, msg=msg)
        if length == 8:
            lo, hi = self.s.read32(address), self.s.read32(address + 4)
            value = (lo << 32 | hi) if request.word_order == "big" else (hi << 32 | lo)
        else:
            value = self.s.read32(address) & ((1 << (8 * length)) - 1)
        return mmio_pb2.ReadResponse(status=True, data=value)

    def write(self, request, context):
        data = request.data
        address, msg = self._window(request.mmio_id, request.offset, len(data))
        if msg:
            return mmio_pb2.WriteResponse(status=False, msg=msg)
        if len(data) % 4:
            return mmio_pb2.WriteResponse(status=False, msg="MMIO writes must be whole 32-bit words")
        for i in range(0, len(data), 4):
            self.s.write32(address + i, int.from_bytes(data[i:i + 4], "little"))
        return mmio_pb2.WriteResponse(status=True)


class _Buffer(buffer_pb2_grpc.RemoteBufferServicer):
    def __init__(self, state: VirtualBoardState):
        self.s = state

    def _buf(self, bid):
        entry = self.s.ddr.buffers.get(bid)
        return entry

    def allocate(self, request, context):
        try:
            bid, _ = self.s.ddr.allocate(request.size)
        except MemoryError as e:
            return buffer_pb2.AllocateResponse(msg=str(e))
        return buffer_pb2.AllocateResponse(buffer_id=bid)

    def write(self, request_iterator, context):
        pos = 0
        for req in request_iterator:
            entry = self._buf(req.buffer_id)
            if entry is None:
                return buffer_pb2.BufferWriteResponse(msg=f"unknown buffer {req.buffer_id!r}")
            buf = entry[1]
            at = req.start if req.end > req.start else pos      # the client streams chunks in order from 0
            if at + len(req.data) > len(buf):
                return buffer_pb2.BufferWriteResponse(msg=f"write of {len(req.data)} bytes at {at} overruns the "
                                                          f"buffer of {len(buf)} bytes")
            buf[at:at + len(req.data)] = req.data
            pos = at + len(req.data)
        return buffer_pb2.BufferWriteResponse()

    def read(self, request, context):
        entry = self._buf(request.buffer_id)
        if entry is None:
            yield buffer_pb2.BufferReadResponse(msg=f"unknown buffer {request.buffer_id!r}")
            return
        buf = entry[1]
        start = request.start
        end = request.end if request.end > request.start else len(buf)
        data = bytes(buf[start:end])
        for i in range(0, max(len(data), 1), CHUNK):
            yield buffer_pb2.BufferReadResponse(data=data[i:i + CHUNK])

    def freebuffer(self, request, context):
        self.s.ddr.free(request.buffer_id)
        return buffer_pb2.FreeBufferResponse()

    def flush(self, request, context):
        return buffer_pb2.FlushResponse()

    def invalidate(self, request, context):
        return buffer_pb2.InvalidateResponse()

    def physical_address(self, request, context):
        entry = self._buf(request.buffer_id)
        if entry is None:
            return buffer_pb2.AddressResponse(msg=f"unknown buffer {request.buffer_id!r}")
        return buffer_pb2.AddressResponse(address=entry[0])

    def virtual_address(self, request, context):
        entry = self._buf(request.buffer_id)
        if entry is None:
            return buffer_pb2.AddressResponse(msg=f"unknown buffer {request.buffer_id!r}")
        return buffer_pb2.AddressResponse(address=0xFFFF_0000_0000 + entry[0])

    def cacheable(self, request, context):
        return buffer_pb2.CacheableResponse(cacheable=True)


class VirtualBoard:
    """A running virtual ZCU104.

        with VirtualBoard(port=0) as board:          # 0: a free port, see board.port
            os.environ["SPS_PYNQ_REMOTE"] = f"127.0.0.1:{board.port}"
            ...
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, hw: "str | HwConfig | None" = None,
                 workers: int = 4):
        self.state = VirtualBoardState(get_config(hw) if hw is not None else None)
        self.host = host
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vboard"),
                                   options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                            ("grpc.max_send_message_length", 64 * 1024 * 1024),
                                            ("grpc.so_reuseport", 0)])
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
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_fault(self, text: str) -> None:
        self.state.set_fault(text)

    def start(self) -> "VirtualBoard":
        self._server.start()
        self._started = True
        return self

    def stop(self, grace: float = 0.5) -> None:
        if self._started:
            self._server.stop(grace).wait(5)
            self._started = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
