"""The board backend through the UNMODIFIED pynq 4 remote client, against the virtual ZCU104 on 127.0.0.1.

The server runs in-process on a free loopback port (one per module) and once as the `sps-pynq virtual-board`
subprocess. Outputs must equal the sim backend / golden model bit for bit.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pynq")
pytest.importorskip("grpc")

from layer_factory import random_packed_program  # noqa: E402

from sps_pynq import reference  # noqa: E402
from sps_pynq.backends.board import BoardBackend, board_available  # noqa: E402
from sps_pynq.errors import DeviceError, DeviceTimeoutError, HardwareMismatchError  # noqa: E402
from sps_pynq.hw.config import CONFIGS  # noqa: E402
from sps_pynq.hw.regmap import REGISTERS, ErrorCode  # noqa: E402
from sps_pynq.program import Program  # noqa: E402
from sps_pynq.virtual_board import overlay as voverlay  # noqa: E402
from sps_pynq.virtual_board.server import VirtualBoard  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "overlays" / "virtual_zcu104"
HW = CONFIGS["zcu104"]


@pytest.fixture(scope="module")
def board():
    saved = {k: os.environ.get(k) for k in ("SPS_PYNQ_REMOTE", "SPS_PYNQ_OVERLAY")}
    with VirtualBoard(host="127.0.0.1", port=0, faults=True) as vb:
        os.environ["SPS_PYNQ_REMOTE"] = vb.address
        os.environ["SPS_PYNQ_OVERLAY"] = str(OVERLAY)
        try:
            yield vb
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(autouse=True)
def no_fault(request):
    yield
    if "board" in request.fixturenames:
        request.getfixturevalue("board").set_fault("none")


def expected_output(program: Program, x: np.ndarray) -> np.ndarray:
    """What the sim backend computes (the C golden model), else the numpy reference: the bit-exact answer."""
    try:
        from sps_pynq.backends.sim import SimBackend
    except ImportError:
        SimBackend = None
    if SimBackend is not None:
        with SimBackend() as sim:
            sim.load(program)
            sim.write(program.inputs[0].offset, x)
            sim.run()
            return sim.read(program.outputs[0].offset, program.outputs[0].nbytes)
    arena = np.zeros(program.arena_size, np.uint8)
    arena[:len(program.image)] = np.frombuffer(program.image, np.uint8)
    t = program.inputs[0]
    arena[t.offset:t.offset + t.nbytes] = x.reshape(-1).view(np.uint8)
    reference.run_program(arena, program.descriptors(), program.hw)
    o = program.outputs[0]
    return arena[o.offset:o.offset + o.nbytes].view(np.int8).copy()


def run_board(be: BoardBackend, program: Program, x: np.ndarray) -> np.ndarray:
    be.write(program.inputs[0].offset, x)
    be.run()
    return be.read(program.outputs[0].offset, program.outputs[0].nbytes)


def test_virtual_overlay_files_are_current():
    hw = CONFIGS["zcu104"]
    assert (OVERLAY / "sps.hwh").read_text() == voverlay.hwh_text(hw), \
        "regenerate with python -m sps_pynq.virtual_board.overlay"
    assert (OVERLAY / "sps.bit").read_bytes() == voverlay.bit_bytes(hw)
    assert "NOT produced by Vivado" in (OVERLAY / "sps.hwh").read_text()


def test_board_equals_golden_bit_for_bit(board):
    rng = np.random.default_rng(7)
    for seed in range(3):
        program = random_packed_program(np.random.default_rng(seed), HW, n_layers=5)
        with BoardBackend() as be:
            be.load(program)
            for _ in range(2):        # two runs on one load: input sync and output sync each time
                x = rng.integers(-128, 128, size=program.inputs[0].nbytes, dtype=np.int8)
                got = run_board(be, program, x)
                assert np.array_equal(got, expected_output(program, x)), f"seed {seed}"
            st = be.stats()
            assert st["virtual"] and len(st["layers"]) == program.num_layers
            assert st["cycles"] == sum(r["cycles"] for r in st["layers"]) > 0
            assert st["mac_cycles"] == sum(r["mac_cycles"] for r in st["layers"])
            assert st["seconds"] > 0 and st["polls"] >= 1


def test_session_board_equals_sim(board):
    session_mod = pytest.importorskip("sps_pynq.runtime.session")
    program = random_packed_program(np.random.default_rng(11), HW, n_layers=4)
    x = np.random.default_rng(3).standard_normal((1,) + program.inputs[0].shape).astype(np.float32)
    board_out = session_mod.Session(program, backend="board").run(x)
    sim_out = session_mod.Session(program, backend="sim").run(x)
    assert np.array_equal(np.asarray(board_out), np.asarray(sim_out))


def test_one_board_session_shared_by_threads(board):
    from test_session import hammer_one_session
    session_mod = pytest.importorskip("sps_pynq.runtime.session")
    program = random_packed_program(np.random.default_rng(21), HW, n_layers=4, in_shape=(5, 11, 9))
    with session_mod.Session(program, backend="board") as s:
        hammer_one_session(s, program, threads=3, runs=2)


def test_hang_times_out_with_register_dump_and_recovers(board):
    program = random_packed_program(np.random.default_rng(1), HW, n_layers=3)
    with BoardBackend(timeout=0.5) as be:
        be.load(program)
        board.set_fault("hang")
        x = np.zeros(program.inputs[0].nbytes, np.int8)
        with pytest.raises(DeviceTimeoutError) as e:
            run_board(be, program, x)
        msg = str(e.value)
        assert "0.5 s" in msg and "soft-reset" in msg
        for r in REGISTERS:
            assert r.name in msg
        board.set_fault("none")
        assert np.array_equal(run_board(be, program, x), expected_output(program, x))


def test_injected_error_names_layer_and_code(board):
    program = random_packed_program(np.random.default_rng(2), HW, n_layers=3)
    board.set_fault(f"error {int(ErrorCode.ACT_BUF_OVERFLOW)} 1")
    with BoardBackend() as be:
        be.load(program)
        with pytest.raises(DeviceError) as e:
            run_board(be, program, np.zeros(program.inputs[0].nbytes, np.int8))
    msg = str(e.value)
    assert f"layer 1 ({program.layers[1].name})" in msg and "ACT_BUF_OVERFLOW" in msg


def test_bad_descriptor_is_reported_by_the_core(board):
    program = random_packed_program(np.random.default_rng(4), HW, n_layers=3)
    image = bytearray(program.image)
    at = program.prog_offset + 2 * 128
    image[at] = (image[at] & 0xF0) | 0xF          # op 15: no such op
    program.image = bytes(image)
    with BoardBackend() as be:
        be.load(program)
        with pytest.raises(DeviceError, match=r"layer 2 .*BAD_OP"):
            run_board(be, program, np.zeros(program.inputs[0].nbytes, np.int8))


def test_mismatched_program_is_refused_naming_both(board):
    program = random_packed_program(np.random.default_rng(5), CONFIGS["small"], n_layers=2)
    with BoardBackend() as be:
        with pytest.raises(HardwareMismatchError) as e:
            be.load(program)
    msg = str(e.value)
    assert "2x4" in msg and "16x16" in msg and "sps_core_0" in msg


def test_board_available(board, monkeypatch):
    ok, why = board_available()
    assert ok, why
    monkeypatch.setenv("SPS_PYNQ_REMOTE", "127.0.0.1:1")
    ok, why = board_available()
    assert not ok and "nothing answers" in why
    monkeypatch.setenv("SPS_PYNQ_REMOTE", "not a host:port:x")
    assert board_available()[0] is False
    monkeypatch.delenv("SPS_PYNQ_REMOTE")
    monkeypatch.delenv("PYNQ_REMOTE_DEVICES", raising=False)
    if not os.path.exists("/proc/device-tree/chosen/pynq_board"):
        ok, why = board_available()
        assert not ok and "no PYNQ board" in why


CLIENT = r"""
import os, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from layer_factory import random_packed_program
from sps_pynq.backends.board import BoardBackend
from sps_pynq.hw.config import CONFIGS
program = random_packed_program(np.random.default_rng(21), CONFIGS["zcu104"], n_layers=4)
x = np.arange(program.inputs[0].nbytes).astype(np.int8)
with BoardBackend() as be:
    be.load(program)
    be.write(program.inputs[0].offset, x)
    be.run()
    out = be.read(program.outputs[0].offset, program.outputs[0].nbytes)
np.save(sys.argv[2], out)
"""


def run_client_and_check(env: dict, tmp_path) -> None:
    """Run CLIENT in a fresh process with `env` and check its output against the golden model."""
    out_file = tmp_path / "out.npy"
    subprocess.run([sys.executable, "-c", CLIENT, str(ROOT / "host_tests"), str(out_file)], env=env,
                   check=True, timeout=120, cwd=tmp_path)
    program = random_packed_program(np.random.default_rng(21), HW, n_layers=4)
    x = np.arange(program.inputs[0].nbytes).astype(np.int8)
    assert np.array_equal(np.load(out_file), expected_output(program, x))


def test_cli_server_subprocess_and_client_subprocess(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "sps_pynq", "virtual-board", "--port", "0",
                               "--exit-after", "120"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = server.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        address = line.split("listening on ")[1].split()[0]
        env = dict(os.environ, SPS_PYNQ_REMOTE=address, SPS_PYNQ_OVERLAY=str(OVERLAY))
        env.pop("PYNQ_REMOTE_DEVICES", None)
        run_client_and_check(env, tmp_path)
    finally:
        server.terminate()
        server.wait(10)


def test_energy_command_on_the_virtual_board_reports_latency_not_power(board, tmp_path, capsys):
    from sps_pynq.cli import main
    from sps_pynq.model_file import save
    sps = save(random_packed_program(np.random.default_rng(8), HW, n_layers=3), tmp_path / "sps.spsmodel")
    dense = save(random_packed_program(np.random.default_rng(9), HW, n_layers=3), tmp_path / "dense.spsmodel")
    assert main(["energy", str(sps), "--dense-model", str(dense), "--seconds", "0.1"]) == 0
    out = capsys.readouterr().out
    assert out.count("power: unavailable (the virtual board has no power rails") == 2
    assert "latency median" in out and "energy ratio unavailable" in out
    assert "mJ/inference" not in out


def test_pynq_remote_devices_variable_on_the_default_port(tmp_path):
    """PYNQ's own configuration: PYNQ_REMOTE_DEVICES=host, port 7967 (skipped when 7967 is taken here)."""
    try:
        vb = VirtualBoard(host="127.0.0.1", port=7967)
    except (OSError, RuntimeError):
        pytest.skip("port 7967 is in use on this machine")
    with vb:
        env = dict(os.environ, PYNQ_REMOTE_DEVICES="127.0.0.1", SPS_PYNQ_OVERLAY=str(OVERLAY))
        env.pop("SPS_PYNQ_REMOTE", None)
        run_client_and_check(env, tmp_path)


def test_overlay_replaced_behind_our_back_is_downloaded_again(board):
    program = random_packed_program(np.random.default_rng(12), HW, n_layers=2)
    with BoardBackend() as be:
        be.load(program)
    board.state.load_firmware("someone_elses_design.bin")     # the fabric now holds no SPS core
    assert board.core is None
    x = np.zeros(program.inputs[0].nbytes, np.int8)
    with BoardBackend() as be:
        be.load(program)
        assert np.array_equal(run_board(be, program, x), expected_output(program, x))


def test_fault_control_through_the_remote_protocol(board):
    from sps_pynq.virtual_board.server import FAULT_FILE
    program = random_packed_program(np.random.default_rng(13), HW, n_layers=3)
    with BoardBackend() as be:
        be.load(program)
        be.device.write_file(FAULT_FILE, b"error 4 0")          # pynq's own RemoteDevice.write_file
        assert be.device.read_file(FAULT_FILE) == b"error 4 0"
        with pytest.raises(DeviceError, match=r"layer 0 .*BAD_SHAPE"):
            run_board(be, program, np.zeros(program.inputs[0].nbytes, np.int8))
        be.device.write_file(FAULT_FILE, b"none")
        x = np.ones(program.inputs[0].nbytes, np.int8)
        assert np.array_equal(run_board(be, program, x), expected_output(program, x))


@pytest.mark.slow
def test_zoo_resnet20_session_board_equals_sim(board, tmp_path):
    """A whole packed network (residual adds, pools, FC) through Session on both backends."""
    pytest.importorskip("torch")
    session_mod = pytest.importorskip("sps_pynq.runtime.session")
    from sps_pynq.cli import main
    model = tmp_path / "resnet20.spsmodel"
    assert main(["pack", "--model", "resnet20", "--pps", "8x4", "--num-calib", "4", "-o", str(model)]) == 0
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with session_mod.Session(model, backend="board") as sb, session_mod.Session(model, backend="sim") as ss:
        assert np.array_equal(sb.run(x), ss.run(x))
        assert sb.stats()["layers"] and sb.stats()["virtual"]


def test_virtual_overlay_is_refused_on_a_real_board(board):
    from sps_pynq.errors import BackendError
    program = random_packed_program(np.random.default_rng(14), HW, n_layers=2)
    saved = board.state.files["/proc/version"]
    board.state.files["/proc/version"] = b"Linux version 6.6.10-xilinx-v2024.1 aarch64 GNU/Linux\n"   # a real PYNQ
    try:
        with BoardBackend() as be, pytest.raises(BackendError, match="virtual overlay"):
            be.load(program)
    finally:
        board.state.files["/proc/version"] = saved
