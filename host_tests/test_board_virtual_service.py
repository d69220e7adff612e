"""The virtual ZCU104 as a network service shared by clients: limits, ownership, range checks, fault control,
one core for many clients (never a wrong answer), slow clients, and what a killed client held.

A client is one gRPC connection (sps_pynq/virtual_board/clients.py). Raw stubs here use a channel of their own
(`grpc.use_local_subchannel_pool`): gRPC otherwise shares one connection between channels of a process.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("pynq")

from layer_factory import random_packed_program  # noqa: E402
from pynq.remote import buffer_pb2, buffer_pb2_grpc, mmio_pb2, mmio_pb2_grpc  # noqa: E402
from pynq.remote import remote_device_pb2, remote_device_pb2_grpc  # noqa: E402

from sps_pynq.backends.board import BoardBackend  # noqa: E402
from sps_pynq.hw.config import CONFIGS  # noqa: E402
from sps_pynq.hw.ip import CORE_BASE, CORE_RANGE  # noqa: E402
from sps_pynq.hw.regmap import REG, CtrlBit  # noqa: E402
from sps_pynq.virtual_board.clients import Limits, connected_peers  # noqa: E402
from sps_pynq.virtual_board.server import FAULT_FILE, FPGA_FIRMWARE, VirtualBoard  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "overlays" / "virtual_zcu104"
HW = CONFIGS["zcu104"]


class Raw:
    """One client: the three stubs on a connection of its own."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        self.dev = remote_device_pb2_grpc.RemoteDeviceStub(self.channel)
        self.mmio = mmio_pb2_grpc.MmioStub(self.channel)
        self.buf = buffer_pb2_grpc.RemoteBufferStub(self.channel)

    def write_file(self, path, data):
        return self.dev.writefile(iter([remote_device_pb2.WriteFileRequest(file_path=path, data=data)]))

    def allocate(self, size):
        return self.buf.allocate(buffer_pb2.AllocateRequest(size=size, dtype="|u1")).buffer_id

    def write(self, bid, data, start=0, end=0):
        return self.buf.write(iter([buffer_pb2.BufferWriteRequest(buffer_id=bid, data=data, start=start, end=end)]))

    def read(self, bid, start=0, end=0):
        return b"".join(r.data for r in self.buf.read(buffer_pb2.BufferReadRequest(buffer_id=bid, start=start,
                                                                                   end=end)))

    def close(self):
        self.channel.close()


def code_of(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


@pytest.fixture
def board():
    limits = Limits(rpc_seconds=3.0, busy_wait_seconds=0.5, buffer_bytes=1 << 20, ddr_bytes=3 << 20,
                    buffers_per_client=4, mmio_windows_per_client=3, registers=16, file_bytes=1 << 20,
                    files_bytes=2 << 20, files=12, reap_seconds=0.2)
    with VirtualBoard(port=0, hw="zcu104", limits=limits) as vb:
        yield vb


def test_faults_only_when_enabled(board):
    c = Raw(board.address)
    code, msg = code_of(lambda: c.write_file(FAULT_FILE, b"hang"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "fault injection is off" in msg
    assert board.core.fault is None
    board.set_fault("hang")                        # the operator's own control works
    assert board.core.fault == "hang"
    with pytest.raises(ValueError, match="write 'hang', 'error CODE LAYER'"):
        board.set_fault("error x 1")
    assert board.core.fault == "hang"               # unchanged by a refused fault
    c.close()


def test_malformed_fault_is_refused_and_overlays_still_load():
    with VirtualBoard(port=0, faults=True) as vb:
        c = Raw(vb.address)
        for text in (b"error x 1", b"error 99 0", b"error 4", b"error 4 -1", b"hang now", b"\xff",
                     b"error 4 " + b"9" * 50):
            code, msg = code_of(lambda: c.write_file(FAULT_FILE, text))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "'hang', 'error CODE LAYER'" in msg, text
        c.write_file("/lib/firmware/sps.bin", (OVERLAY / "sps.bit").read_bytes()[-4096:])
        c.write_file(FPGA_FIRMWARE, b"sps.bin")          # a bitstream load still works after bad faults
        c.write_file(FAULT_FILE, b"error 4 2")
        assert vb.state.fault == ("error", 4, 2)
        c.close()


def test_buffers_belong_to_their_client(board):
    a, b = Raw(board.address), Raw(board.address)
    bid = a.allocate(4096)
    a.write(bid, b"\x01" * 16)
    for call in (lambda: b.write(bid, b"x"), lambda: b.read(bid),
                 lambda: b.buf.freebuffer(buffer_pb2.FreeBufferRequest(buffer_id=bid)),
                 lambda: b.buf.physical_address(buffer_pb2.AddressRequest(buffer_id=bid)),
                 lambda: b.buf.invalidate(buffer_pb2.InvalidateRequest(buffer_id=bid))):
        code, msg = code_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "belongs to another client" in msg
    assert a.read(bid)[:16] == b"\x01" * 16
    # MMIO onto a's buffer from b is refused too
    phys = a.buf.physical_address(buffer_pb2.AddressRequest(buffer_id=bid)).address
    mid = b.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=phys, length=4096)).mmio_id
    code, msg = code_of(lambda: b.mmio.write(mmio_pb2.WriteRequest(mmio_id=mid, offset=0, data=b"\0" * 4)))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "another client allocated" in msg
    code, _ = code_of(lambda: a.mmio.read(mmio_pb2.ReadRequest(mmio_id=mid, offset=0, length=4)))
    assert code == grpc.StatusCode.PERMISSION_DENIED            # b's window, used by a
    code, _ = code_of(lambda: b.read("buf999"))
    assert code == grpc.StatusCode.NOT_FOUND
    a.close(), b.close()


def test_request_fields_are_range_checked(board):
    c = Raw(board.address)
    bid = c.allocate(4096)
    for kwargs, want in (({"start": -100_000_000, "end": 0}, grpc.StatusCode.INVALID_ARGUMENT),
                         ({"start": -8, "end": -4}, grpc.StatusCode.INVALID_ARGUMENT),
                         ({"start": 4090, "end": 4098}, grpc.StatusCode.OUT_OF_RANGE),
                         ({"start": 0, "end": 3}, grpc.StatusCode.INVALID_ARGUMENT)):
        assert code_of(lambda: c.write(bid, b"x" * 8, **kwargs))[0] == want, kwargs
    assert code_of(lambda: c.write(bid, b"x" * 5000))[0] == grpc.StatusCode.OUT_OF_RANGE
    assert code_of(lambda: c.read(bid, start=100, end=50))[0] == grpc.StatusCode.OUT_OF_RANGE
    assert code_of(lambda: c.read(bid, start=-1))[0] == grpc.StatusCode.OUT_OF_RANGE
    assert code_of(lambda: c.read(bid, start=0, end=5000))[0] == grpc.StatusCode.OUT_OF_RANGE
    assert len(board.state.ddr.buffers[bid][1]) == 4096                # nothing grew
    assert code_of(lambda: c.buf.allocate(buffer_pb2.AllocateRequest(size=-5)))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    for base, length in ((0, 0), (0, 1 << 40), ((1 << 64) - 4, 8)):
        assert code_of(lambda: c.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=base, length=length)))[0] == \
            grpc.StatusCode.INVALID_ARGUMENT
    mid = c.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=CORE_BASE, length=CORE_RANGE)).mmio_id
    for req in (mmio_pb2.ReadRequest(mmio_id=mid, offset=CORE_RANGE, length=4),
                mmio_pb2.ReadRequest(mmio_id=mid, offset=(1 << 64) - 4, length=4),
                mmio_pb2.ReadRequest(mmio_id=mid, offset=0, length=3)):
        assert code_of(lambda: c.mmio.read(req))[0] == grpc.StatusCode.INVALID_ARGUMENT
    for data in (b"\0" * 3, b"\0" * 8192, b""):
        assert code_of(lambda: c.mmio.write(mmio_pb2.WriteRequest(mmio_id=mid, offset=0, data=data)))[0] == \
            grpc.StatusCode.INVALID_ARGUMENT
    c.close()


def test_memory_files_and_registers_are_capped(board):
    a, b, c = Raw(board.address), Raw(board.address), Raw(board.address)
    code, msg = code_of(lambda: a.allocate(2 << 20))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "a buffer is 1..1048576 bytes" in msg
    for _ in range(4):
        a.allocate(1024)
    code, msg = code_of(lambda: a.allocate(1024))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "holds 4 buffers" in msg
    b.allocate(1 << 20)
    code, msg = code_of(lambda: b.allocate(1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "one client may hold" in msg
    c.allocate(1 << 20)
    code, msg = code_of(lambda: Raw(board.address).allocate(1 << 20))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "of the virtual DDR's 3145728 bytes" in msg
    # files: one too large (refused while streaming), a path pynq never writes, the total
    big = iter([remote_device_pb2.WriteFileRequest(file_path="/lib/firmware/x.bin", data=bytes(600_000))] * 2)
    code, msg = code_of(lambda: a.dev.writefile(big))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "largest file" in msg
    code, msg = code_of(lambda: a.write_file("/proc/version", b"real board"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "read-only" in msg
    a.write_file("/lib/firmware/a.bin", bytes(1 << 20))
    code, msg = code_of(lambda: a.write_file("/lib/firmware/b.bin", bytes(1 << 20)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "bytes of files are in use" in msg
    for j in range(6):
        a.write_file(f"/lib/firmware/f{j}.bin", b"x")
    code, msg = code_of(lambda: a.write_file("/lib/firmware/one_more.bin", b"x"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "files, its most" in msg
    # plain registers: 16 distinct addresses written, then no more (rewriting one is fine)
    mid = a.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=0x8000_0000, length=4096)).mmio_id
    for j in range(16):
        a.mmio.write(mmio_pb2.WriteRequest(mmio_id=mid, offset=4 * j, data=b"\1\0\0\0"))
    a.mmio.write(mmio_pb2.WriteRequest(mmio_id=mid, offset=0, data=b"\2\0\0\0"))
    code, msg = code_of(lambda: a.mmio.write(mmio_pb2.WriteRequest(mmio_id=mid, offset=64, data=b"\1\0\0\0")))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "written registers" in msg
    for _ in range(2):
        a.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=0x8000_0000, length=4096))
    code, msg = code_of(lambda: a.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=0, length=4)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "MMIO windows" in msg
    for x in (a, b, c):
        x.close()


def _blocked_writefile(client, release: threading.Event, outcome: list):
    def requests():
        yield remote_device_pb2.WriteFileRequest(file_path="/lib/firmware/slow.bin", data=b"x")
        release.wait(30)            # a client that stops sending
    try:
        client.dev.writefile(requests())
        outcome.append("ok")
    except grpc.RpcError as e:
        outcome.append(e.code())


def test_slow_clients_do_not_starve_others(monkeypatch):
    """Four slow clients, each trying more streams than it may have: its extra streams are refused at once and
    the rest leave server threads free, so a normal client loads and runs a program while they are open."""
    monkeypatch.setenv("SPS_PYNQ_OVERLAY", str(OVERLAY))
    limits = Limits(workers=12, calls_per_client=2, rpc_seconds=60.0)
    release = threading.Event()
    outcome = []
    with VirtualBoard(port=0, limits=limits) as vb:
        slow = [Raw(vb.address) for _ in range(4)]
        threads = [threading.Thread(target=_blocked_writefile, args=(c, release, outcome)) for c in slow
                   for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while outcome.count(grpc.StatusCode.RESOURCE_EXHAUSTED) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outcome == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4            # the third stream of each
        program = random_packed_program(np.random.default_rng(2), HW, n_layers=3)
        x = np.arange(program.inputs[0].nbytes).astype(np.int8)
        with BoardBackend(device=_remote_device(vb.address, monkeypatch)) as be:
            be.load(program)
            be.write(program.inputs[0].offset, x)
            be.run()
            assert np.array_equal(be.read(program.outputs[0].offset, program.outputs[0].nbytes),
                                  expected(program, x))
        assert len(outcome) == 4 and vb.clients.cancelled == 0                # served while 8 streams hang open
        release.set()
        for t in threads:
            t.join(20)
        assert sorted(map(str, outcome)) == sorted(["ok"] * 8 + [str(grpc.StatusCode.RESOURCE_EXHAUSTED)] * 4)
        for c in slow:
            c.close()


def test_a_call_running_too_long_is_cancelled():
    """A client that opens a stream and stops sending holds a server thread for rpc_seconds at most."""
    release = threading.Event()
    outcome = []
    with VirtualBoard(port=0, limits=Limits(rpc_seconds=1.0)) as vb:
        c = Raw(vb.address)
        t = threading.Thread(target=_blocked_writefile, args=(c, release, outcome))
        t.start()
        t.join(15)
        release.set()
        assert outcome == [grpc.StatusCode.CANCELLED] and vb.clients.cancelled == 1
        assert "/lib/firmware/slow.bin" not in vb.state.files
        c.close()


CLIENT = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from layer_factory import random_packed_program
from sps_pynq.backends.board import BoardBackend
from sps_pynq.hw.config import CONFIGS
seed, runs = int(sys.argv[3]), int(sys.argv[4])
program = random_packed_program(np.random.default_rng(seed), CONFIGS["zcu104"], n_layers=3)
x = np.arange(program.inputs[0].nbytes).astype(np.int8)
with BoardBackend() as be:
    be.load(program)
    print("loaded", flush=True)
    for _ in range(runs):
        be.write(program.inputs[0].offset, x)
        be.run()
        out = be.read(program.outputs[0].offset, program.outputs[0].nbytes)
    np.save(sys.argv[2], out)
    if len(sys.argv) > 5:
        print("done", flush=True)
        import time; time.sleep(60)
"""


def expected(program, x):
    from sps_pynq.backends.sim import SimBackend
    with SimBackend() as sim:
        sim.load(program)
        sim.write(program.inputs[0].offset, x)
        sim.run()
        return sim.read(program.outputs[0].offset, program.outputs[0].nbytes)


def _remote_device(address, monkeypatch):
    """A pynq RemoteDevice on a connection of its own (pynq's channels would share one in this process), made
    pynq's active device (pynq.Overlay looks for one) until the test ends."""
    import pynq
    import pynq.pl_server.remote_device as rd
    host, port = address.rsplit(":", 1)
    real = rd.grpc.insecure_channel
    rd.grpc.insecure_channel = lambda target: real(target, options=[("grpc.use_local_subchannel_pool", 1)])
    try:
        dev = rd.RemoteDevice(0, host, int(port))
    finally:
        rd.grpc.insecure_channel = real
    monkeypatch.setattr(pynq.Device, "_active_device", dev, raising=False)
    from pynq.ps import Clocks                   # caches its device: drop it (as backends/board/discovery.py does)
    if hasattr(Clocks, "_real_instance"):
        monkeypatch.delattr(Clocks, "_real_instance")
    Clocks.set_device(dev)
    return dev


def test_clients_sharing_the_core_always_get_their_own_answer(monkeypatch):
    """Three clients, each with its own program and arena, run at once on the one core: every output is the
    golden model's for that client's program and input (before: wrong answers and AXI errors)."""
    monkeypatch.setenv("SPS_PYNQ_OVERLAY", str(OVERLAY))
    with VirtualBoard(port=0) as vb:
        jobs = []
        for seed in range(3):
            program = random_packed_program(np.random.default_rng(30 + seed), HW, n_layers=4)
            be = BoardBackend(device=_remote_device(vb.address, monkeypatch))
            be.load(program)                           # one at a time: each load downloads the overlay
            jobs.append((be, program))
        assert len(vb.clients.clients) >= 3
        errors = []

        def hammer(be, program, seed):
            rng = np.random.default_rng(seed)
            try:
                for _ in range(6):
                    x = rng.integers(-128, 128, size=program.inputs[0].nbytes, dtype=np.int8)
                    be.write(program.inputs[0].offset, x)
                    be.run()
                    got = be.read(program.outputs[0].offset, program.outputs[0].nbytes)
                    if not np.array_equal(got, expected(program, x)):
                        errors.append(f"client {seed}: wrong answer")
            except Exception as e:           # noqa: BLE001 - every failure is reported below
                errors.append(f"client {seed}: {type(e).__name__}: {e}")
        threads = [threading.Thread(target=hammer, args=(be, p, j)) for j, (be, p) in enumerate(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for be, _ in jobs:
            be.close()
        assert errors == []


def test_a_start_while_another_client_runs_waits_then_says_busy(board):
    """The core held by a hung run of client a: b's START waits busy_wait_seconds, then UNAVAILABLE BUSY; a's
    SOFT_RESET frees the core and b's START goes through; each reads its own status."""
    a, b = Raw(board.address), Raw(board.address)
    ma = a.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=CORE_BASE, length=CORE_RANGE)).mmio_id
    mb = b.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=CORE_BASE, length=CORE_RANGE)).mmio_id

    def ctrl(c, m):
        return c.mmio.read(mmio_pb2.ReadRequest(mmio_id=m, offset=REG["CTRL"], length=4)).data

    def write(c, m, name, value):
        c.mmio.write(mmio_pb2.WriteRequest(mmio_id=m, offset=REG[name], data=value.to_bytes(4, "little")))
    board.set_fault("hang")
    write(a, ma, "NUM_LAYERS", 0)
    write(a, ma, "CTRL", CtrlBit.START)
    assert ctrl(a, ma) & CtrlBit.START and ctrl(b, mb) == CtrlBit.IDLE      # b sees its own (idle) core
    t0 = time.monotonic()
    code, msg = code_of(lambda: write(b, mb, "CTRL", CtrlBit.START))
    assert code == grpc.StatusCode.UNAVAILABLE and msg.startswith("virtual board: BUSY") and \
        0.4 < time.monotonic() - t0 < 5
    write(b, mb, "CTRL", CtrlBit.SOFT_RESET)               # b cannot abort a's run
    assert ctrl(a, ma) & CtrlBit.START
    board.set_fault("none")
    write(a, ma, "CTRL", CtrlBit.SOFT_RESET)
    write(b, mb, "NUM_LAYERS", 0)                            # no arena at address 0: DONE with AXI_ERROR
    write(b, mb, "CTRL", CtrlBit.START)
    for _ in range(200):
        if ctrl(b, mb) & (CtrlBit.DONE | CtrlBit.ERROR):
            break
        time.sleep(0.01)
    assert ctrl(b, mb) & (CtrlBit.DONE | CtrlBit.ERROR) and ctrl(a, ma) == CtrlBit.IDLE
    a.close(), b.close()


def test_a_killed_client_leaves_nothing_behind(tmp_path):
    """A client process killed with its arena loaded (and one killed with its run hung on the core): what it
    held is freed within a few reap intervals, and the core is free for the next client."""
    limits = Limits(reap_seconds=0.2, busy_wait_seconds=2.0)
    with VirtualBoard(port=0, limits=limits) as vb:
        assert connected_peers() is not None, "channelz is not readable: disconnects are not noticed"
        env = dict(os.environ, SPS_PYNQ_REMOTE=vb.address, SPS_PYNQ_OVERLAY=str(OVERLAY))
        env.pop("PYNQ_REMOTE_DEVICES", None)
        for hang in (False, True):
            vb.set_fault("hang" if hang else "none")
            proc = subprocess.Popen([sys.executable, "-c", CLIENT if not hang else HANGING, str(ROOT / "host_tests"),
                                     str(tmp_path / "o.npy"), "5", "1", "wait"], env=env, stdout=subprocess.PIPE,
                                    text=True, cwd=tmp_path)
            try:
                want = "running" if hang else "done"
                while True:
                    line = proc.stdout.readline()
                    assert line, "the client ended early"
                    if line.strip() == want:
                        break
                assert vb.state.ddr.buffers and vb.state.owners
                if hang:
                    assert vb.core.read(REG["CTRL"]) & CtrlBit.START
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            deadline = time.monotonic() + 10
            while (vb.state.ddr.buffers or vb.state.mmios) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not vb.state.ddr.buffers and not vb.state.owners and not vb.state.mmios
            assert not vb.core.read(REG["CTRL"]) & CtrlBit.START and vb.state.owner is None
        vb.set_fault("none")
        program = random_packed_program(np.random.default_rng(2), HW, n_layers=3)
        subprocess.run([sys.executable, "-c", CLIENT, str(ROOT / "host_tests"), str(tmp_path / "n.npy"), "2", "1"],
                       env=env, check=True, timeout=120, cwd=tmp_path)
        x = np.arange(program.inputs[0].nbytes).astype(np.int8)
        assert np.array_equal(np.load(tmp_path / "n.npy"), expected(program, x))
        assert vb.clients.reaped >= 2


HANGING = r"""
import sys, threading, numpy as np
sys.path.insert(0, sys.argv[1])
from layer_factory import random_packed_program
from sps_pynq.backends.board import BoardBackend
from sps_pynq.hw.config import CONFIGS
program = random_packed_program(np.random.default_rng(5), CONFIGS["zcu104"], n_layers=3)
be = BoardBackend(timeout=600)
be.load(program)
threading.Timer(1.0, lambda: print("running", flush=True)).start()
be.run()                                  # the core hangs (fault): killed while it waits
"""
