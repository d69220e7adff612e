"""Session on the sim backend: float and int8 runs against the numpy reference, host steps, backend choice,
stats, and every user error (shape, dtype, hardware mismatch, missing compiler, corrupted model)."""
import dataclasses
import sys
import zipfile

import numpy as np
import pytest

from layer_factory import random_packed_program
from sps_pynq import model_file, reference
from sps_pynq.cli import main as cli_main
from sps_pynq.errors import BackendError, DeviceError, HardwareMismatchError, InputError, ModelFileError
from sps_pynq.hw.config import CONFIGS
from sps_pynq.hw.descriptor import DESC_BYTES
from sps_pynq.runtime.preprocess import quantize
from sps_pynq.runtime.session import Session

HW = CONFIGS["zcu104"]


@pytest.fixture(scope="module")
def program():
    return random_packed_program(np.random.default_rng(21), HW, n_layers=6, in_shape=(5, 11, 9))


def _reference_int8(program, q):
    """int8 outputs of the numpy reference for one int8 input sample."""
    arena = np.zeros(program.arena_size, np.uint8)
    arena[:len(program.image)] = np.frombuffer(program.image, np.uint8)
    t = program.inputs[0]
    arena[t.offset:t.offset + t.nbytes] = q.reshape(-1).view(np.uint8)
    reference.run_program(arena, program.descriptors(), program.hw)
    o = program.outputs[0]
    return arena[o.offset:o.offset + o.nbytes].view(np.int8).reshape(o.shape)


def test_run_float_matches_reference_single_and_batch(program):
    rng = np.random.default_rng(1)
    t, o = program.inputs[0], program.outputs[0]
    x = rng.normal(scale=40 * t.scale, size=(4,) + t.shape)
    with Session(program, backend="sim") as s:
        y = s.run(x.astype(np.float32))
        y1 = s.run(x[2])                                   # (C,H,W), float64
    assert y.shape == (4,) + o.shape and y.dtype == np.float32 and y1.shape == (1,) + o.shape
    for n in range(4):
        expected = _reference_int8(program, quantize(x[n], t.scale)).astype(np.float32) * np.float32(o.scale)
        assert np.array_equal(y[n], expected)
    assert np.array_equal(y1[0], y[2])


def test_run_int8_is_raw(program):
    rng = np.random.default_rng(2)
    t = program.inputs[0]
    q = rng.integers(-128, 128, size=(3,) + t.shape).astype(np.int8)
    with Session(program, backend="sim") as s:
        out = s.run_int8(q)
    assert out.dtype == np.int8
    for n in range(3):
        assert np.array_equal(out[n], _reference_int8(program, q[n]))


def test_quantize_rounds_half_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1000.0, -1000.0, 126.6])
    assert list(quantize(x, 1.0)) == [0, 2, 2, 0, -2, 127, -128, 127]


def test_host_softmax_and_onnx_output_shape(program):
    o = program.outputs[0]
    p = dataclasses.replace(program, host_steps=[{"op": "softmax", "tensor": o.name, "axis": 1}],
                            metadata={"onnx_outputs": {o.name: [1, o.nbytes]}})
    with Session(p, backend="sim") as s:
        y = s.run(np.random.default_rng(3).normal(size=(2,) + program.inputs[0].shape))
    assert y.shape == (2, o.nbytes)
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-5) and (y > 0).all()


def test_host_log_softmax(program):
    o = program.outputs[0]
    x = np.random.default_rng(4).normal(size=(2,) + program.inputs[0].shape)
    plain = dataclasses.replace(program, metadata={"onnx_outputs": {o.name: [1, o.nbytes]}})
    p = dataclasses.replace(plain, host_steps=[{"op": "log_softmax", "tensor": o.name, "axis": 1}])
    with Session(plain, backend="sim") as s:
        logits = s.run(x)
    with Session(p, backend="sim") as s:
        y = s.run(x)
    assert y.shape == (2, o.nbytes) and np.allclose(np.exp(y).sum(axis=1), 1.0, atol=1e-5)
    shifted = logits - logits.max(axis=1, keepdims=True)
    assert np.allclose(y, shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), atol=1e-5)


def test_stats_after_run(program):
    with Session(program, backend="sim") as s:
        s.run(np.zeros((2,) + program.inputs[0].shape, np.float32))
        st = s.stats()
    assert st["backend"] == "sim" and len(st["layers"]) == program.num_layers
    assert (st["macs"], st["dense_macs"]) == program.conv_macs()
    assert st["batch"] == 2 and len(st["run_seconds"]) == 2 and st["seconds"] > 0
    assert all(layer["seconds"] >= 0 for layer in st["layers"])
    assert st["bytes"]["act_read"] >= program.inputs[0].nbytes and st["bytes"]["descriptors"] == 128 * 6
    conv = [layer for layer in st["layers"] if layer["op"] == "CONV"]
    assert conv and all(layer["bytes"]["weights"] > 0 and layer["bytes"]["params"] > 0 for layer in conv)


def hammer_one_session(session, program, threads=4, runs=6):
    """Several threads run different inputs through ONE session; every output must be its own input's answer."""
    from concurrent.futures import ThreadPoolExecutor
    t = program.inputs[0]
    rng = np.random.default_rng(5)
    xs = [rng.integers(-128, 128, size=(1 + k % 2,) + t.shape).astype(np.int8) for k in range(threads * runs)]
    with ThreadPoolExecutor(threads) as pool:
        outs = list(pool.map(session.run_int8, xs))
    for x, y in zip(xs, outs):
        for n in range(x.shape[0]):
            assert np.array_equal(y[n], _reference_int8(program, x[n]))
    assert session.stats()["session_runs"] == sum(x.shape[0] for x in xs)


def test_one_session_shared_by_threads(program):
    # The C model's weight cache and the one arena were shared unguarded: use-after-free or wrong outputs.
    with Session(program, backend="sim", threads=2) as s:
        hammer_one_session(s, program)


def test_wrong_shape_and_dtype(program):
    shape = program.inputs[0].shape
    with Session(program, backend="sim") as s:
        with pytest.raises(InputError, match=r"expected shape \(5, 11, 9\).*got \(5, 9, 11\)"):
            s.run(np.zeros((5, 9, 11), np.float32))
        with pytest.raises(InputError, match="got \\(2, 3, 5, 11, 9\\)"):
            s.run(np.zeros((2, 3) + shape, np.float32))
        with pytest.raises(InputError, match="float32/float64.*int32"):
            s.run(np.zeros(shape, np.int32))
        with pytest.raises(InputError, match="int8.*float32"):
            s.run_int8(np.zeros(shape, np.float32))
        with pytest.raises(InputError, match="NaN"):
            s.run(np.full(shape, np.nan))


def test_closed_session(program):
    s = Session(program, backend="sim")
    s.close()
    with pytest.raises(BackendError, match="closed"):
        s.run(np.zeros(program.inputs[0].shape))


def test_hardware_mismatch(program):
    with pytest.raises(HardwareMismatchError, match="16x16.*2x4"):
        Session(program, backend="sim", hw="small")
    with pytest.raises(BackendError, match="unknown hardware configuration"):
        Session(program, backend="sim", hw="nope")
    with pytest.raises(BackendError, match="unknown backend"):
        Session(program, backend="gpu")


def test_auto_picks_sim_without_board_and_says_why(program, monkeypatch):
    import sps_pynq.backends.board as board
    monkeypatch.setattr(board, "board_available", lambda: (False, "no board in this test"))
    with Session(program) as s:
        assert s.backend.name == "sim" and "no board in this test" in s.chosen_backend_reason
    monkeypatch.setitem(sys.modules, "sps_pynq.backends.board", None)      # the module cannot be imported
    with Session(program) as s:
        assert s.backend.name == "sim" and "unavailable" in s.chosen_backend_reason


def test_auto_picks_board_when_available(program, monkeypatch):
    import sps_pynq.backends as backends
    import sps_pynq.backends.board as board
    monkeypatch.setattr(board, "board_available", lambda: (True, "fake overlay"))
    # stand-in for the board backend, so that the choice is visible without a board
    monkeypatch.setitem(backends.BACKENDS, "board", "sps_pynq.backends.sim:SimBackend")
    with Session(program) as s:
        assert "fake overlay" in s.chosen_backend_reason


def test_missing_compiler(program, tmp_path, monkeypatch):
    import sps_pynq.native as native
    monkeypatch.setattr(native, "_MODEL", None)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SPS_PYNQ_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BackendError, match="build-essential"):
        Session(program, backend="sim")


def test_corrupted_model_file(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    with Session(str(path), backend="sim") as s:
        assert s.run(np.zeros(program.inputs[0].shape)).shape[0] == 1
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("image.bin")
    data[info.header_offset + 40] ^= 0xFF          # inside the image blob (or its header)
    bad = tmp_path / "bad.spsmodel"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        Session(str(bad), backend="sim")


def test_corrupted_descriptor_names_the_layer(program):
    image = bytearray(program.image)
    image[2 * DESC_BYTES] = (image[2 * DESC_BYTES] & 0xF0) | 0x9       # layer 2: op 9
    p = dataclasses.replace(program, image=bytes(image))
    # A Program given to Session goes through model_file.check_program first, as a loaded file does
    with pytest.raises(ModelFileError, match=f"Program: layer 2 \\({program.layers[2].name}\\): op is 9"):
        Session(p, backend="sim")
    # the backend itself, given it anyway, reports what the core reports
    from sps_pynq.backends.sim import SimBackend
    with SimBackend() as sim:
        sim.load(p)
        sim.write(p.inputs[0].offset, np.zeros(p.inputs[0].nbytes, np.int8))
        with pytest.raises(DeviceError, match=f"layer 2 \\({program.layers[2].name}\\).*BAD_OP"):
            sim.run()


def test_masked_array_is_refused(program):
    x = np.ma.masked_array(np.zeros((1,) + program.inputs[0].shape), mask=True)
    with Session(program, backend="sim") as s:
        with pytest.raises(InputError, match="masked array"):
            s.run(x)
        with pytest.raises(InputError, match="masked array"):
            s.run_int8(np.ma.masked_array(np.zeros(program.inputs[0].shape, np.int8)))


def test_cli_run(program, tmp_path, capsys):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    assert cli_main(["run", str(path), "--backend", "sim", "--repeat", "3", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "backend: sim" in out and "seeded random" in out and "top 2 classes" in out and "latency" in out
    x = np.random.default_rng(0).normal(size=(2,) + program.inputs[0].shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli_main(["run", str(path), "--backend", "sim", "--input", str(tmp_path / "x.npy")]) == 0
    assert "sample 1:" in capsys.readouterr().out
    np.save(tmp_path / "bad.npy", x[:, :2])
    assert cli_main(["run", str(path), "--backend", "sim", "--input", str(tmp_path / "bad.npy")]) == 2
    assert "expected shape" in capsys.readouterr().err
