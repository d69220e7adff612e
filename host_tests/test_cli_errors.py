"""What a user sees when they give the CLI bad input: one line naming the file/node/layer, exit code 2, no
traceback, no half-written output. One test per kind of mistake walked in acceptance."""
import numpy as np
import onnx
import pytest
from onnx import helper

from sps_pynq.cli import main
from sps_pynq.compiler.testing import make_model

RNG = np.random.default_rng(11)


def one_error_line(capsys, fragment):
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning" not in line]
    assert len(err) == 1 and "Traceback" not in err[0] and fragment in err[0], err
    return err[0]


def tiny_onnx(path, group=1):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1], group=group),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1)]
    inits = {"w": RNG.standard_normal((8, 4 // group, 3, 3)), "B": RNG.standard_normal((5, 8 * 4 * 4))}
    onnx.save(make_model(nodes, [("x", [1, 4, 4, 4])], ["y"], inits), path)
    return path


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    d = tmp_path_factory.mktemp("packed")
    out = d / "tiny.spsmodel"
    assert main(["pack", str(tiny_onnx(d / "tiny.onnx")), "-o", str(out), "--num-calib", "2"]) == 0
    return out


def test_random_bytes_and_truncated_onnx(tmp_path, capsys):
    src = tiny_onnx(tmp_path / "ok.onnx")
    (tmp_path / "rand.onnx").write_bytes(RNG.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (tmp_path / "cut.onnx").write_bytes(src.read_bytes()[:len(src.read_bytes()) // 2])
    for name in ("rand.onnx", "cut.onnx"):
        out = tmp_path / (name + ".spsmodel")
        assert main(["pack", str(tmp_path / name), "-o", str(out)]) == 2
        one_error_line(capsys, f"{name}: not a readable ONNX model")
        assert not out.exists()


def test_grouped_conv_names_the_node(tmp_path, capsys):
    out = tmp_path / "g.spsmodel"
    assert main(["pack", str(tiny_onnx(tmp_path / "g.onnx", group=2)), "-o", str(out)]) == 2
    assert "group=2" in one_error_line(capsys, "node 'conv1' (Conv)")
    assert not out.exists()


def test_output_folder_missing(tmp_path, capsys):
    out = tmp_path / "nodir" / "x.spsmodel"
    assert main(["pack", str(tiny_onnx(tmp_path / "t.onnx")), "-o", str(out), "--num-calib", "2"]) == 2
    one_error_line(capsys, "does not exist")
    assert not out.parent.exists()


def test_bad_pps_spec_says_why(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["pack", str(tiny_onnx(tmp_path / "t.onnx")), "-o", str(tmp_path / "x.spsmodel"), "--pps", "8x10"])
    assert e.value.code == 2
    assert "K=10 taps per pattern, but K must be in 1..9" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "flip_middle", "flip_header", "empty"])
def test_damaged_spsmodel(packed, tmp_path, capsys, damage):
    data = bytearray(packed.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip_middle":
        data[len(data) // 2] ^= 0xFF
    elif damage == "flip_header":
        data[40] ^= 0xFF
    else:
        data = b""
    bad = tmp_path / "bad.spsmodel"
    bad.write_bytes(bytes(data))
    for command in (["inspect", str(bad)], ["run", str(bad), "--backend", "sim"]):
        assert main(command) == 2
        assert "re-pack" in one_error_line(capsys, "bad.spsmodel")


def test_run_missing_model(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.spsmodel"), "--backend", "sim"]) == 2
    one_error_line(capsys, "none.spsmodel: no such .spsmodel file")


def test_run_input_wrong_shape_names_the_file(packed, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 8, 8), np.float32))
    assert main(["run", str(packed), "--backend", "sim", "--input", str(x)]) == 2
    line = one_error_line(capsys, "x.npy: ")
    assert "(4, 4, 4)" in line and "(4, 8, 8)" in line


def test_run_input_unreadable(packed, tmp_path, capsys):
    x = tmp_path / "junk.npy"
    x.write_bytes(b"not numpy")
    assert main(["run", str(packed), "--backend", "sim", "--input", str(x)]) == 2
    one_error_line(capsys, "junk.npy: cannot read")
    assert main(["run", str(packed), "--backend", "sim", "--input", str(tmp_path / "none.npy")]) == 2
    one_error_line(capsys, "none.npy: cannot read")


def test_run_good_input_after_all(packed, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, RNG.standard_normal((2, 4, 4, 4)).astype(np.float32))
    assert main(["run", str(packed), "--backend", "sim", "--input", str(x), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "sample 0: top 2 classes" in out and "sample 1: top 2 classes" in out


def test_hardware_mismatch_names_the_model_file(packed):
    from sps_pynq import Session
    from sps_pynq.errors import HardwareMismatchError
    with pytest.raises(HardwareMismatchError) as e:
        Session(str(packed), backend="sim", hw="small")
    assert str(e.value).startswith(f"{packed}: ") and "re-pack with `sps-pynq pack --hw small`" in str(e.value)


def test_output_is_a_folder(tmp_path, capsys):
    src = tiny_onnx(tmp_path / "t.onnx")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["pack", str(src), "-o", str(tmp_path), "--num-calib", "2"]) == 2
    one_error_line(capsys, f"{tmp_path} is a folder; give a file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == before          # no temporary file left behind


def test_save_into_a_folder_is_a_model_file_error(packed, tmp_path):
    from sps_pynq import model_file
    from sps_pynq.errors import ModelFileError
    with pytest.raises(ModelFileError, match="is a folder"):
        model_file.save(model_file.load(packed), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_zero_synthetic_calibration_inputs(tmp_path, capsys):
    out = tmp_path / "x.spsmodel"
    assert main(["pack", str(tiny_onnx(tmp_path / "t.onnx")), "-o", str(out), "--num-calib", "0"]) == 2
    one_error_line(capsys, "num_calib=0 synthetic calibration inputs; give at least 1")
    assert not out.exists()


def test_negative_threads(packed, capsys):
    assert main(["run", str(packed), "--backend", "sim", "--threads", "-2"]) == 2
    one_error_line(capsys, "--threads -2")


def test_edited_manifest_input_shape_is_refused(packed, tmp_path, capsys):
    """The manifest is not hashed; an input tensor no layer reads (here a smaller shape) must not run."""
    import json
    import zipfile
    with zipfile.ZipFile(packed) as z:
        manifest, image = json.loads(z.read("manifest.json")), z.read("image.bin")
    manifest["inputs"][0]["shape"] = [4, 2, 2]
    bad = tmp_path / "edited.spsmodel"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("image.bin", image)
    assert main(["run", str(bad), "--backend", "sim"]) == 2
    line = one_error_line(capsys, "edited.spsmodel: manifest.inputs[0]: ")
    assert "is not what any layer of the program reads" in line and "re-pack" in line


def test_closed_output_pipe_is_quiet(packed):
    """`sps-pynq inspect m.spsmodel | head -1`: the reader closes the pipe early; no BrokenPipeError traceback."""
    import subprocess
    import sys
    code = ("import os, sys; r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
            "sys.stdout = open(1, 'w', buffering=1); from sps_pynq.cli import main; "
            f"sys.exit(main(['inspect', {str(packed)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr


def test_output_that_is_not_a_regular_file(tmp_path, capsys):
    """`-o` naming a fifo or a symlink to a device: refused before the compile, left as it was."""
    import os
    import stat
    src = tiny_onnx(tmp_path / "t.onnx")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    dev = tmp_path / "null.spsmodel"
    os.symlink("/dev/null", dev)
    for target, kind in ((fifo, "fifo"), (dev, "character device")):
        assert main(["pack", str(src), "-o", str(target), "--num-calib", "2"]) == 2
        one_error_line(capsys, f"{target} is a {kind}, not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.readlink(dev) == "/dev/null"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null.spsmodel", "out.fifo", "t.onnx"]


def _npy_with_header(path, shape, dtype="<f4", data=b""):
    """A .npy file whose header says `shape` whatever data follows (a header that lies)."""
    from numpy.lib import format as npy
    with open(path, "wb") as f:
        npy.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
        f.write(data)
    return path


def test_run_input_files_that_are_not_one_plain_array(packed, tmp_path, capsys):
    """Each refused with one line naming the file, before an array is allocated (the header is read first)."""
    import pickle
    cases = {}
    np.save(tmp_path / "empty.npy", np.zeros((0, 4, 4, 4), np.float32))
    cases["empty.npy"] = "holds no data"
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 4, 4), np.float32))
    (tmp_path / "arrays.npy").write_bytes((tmp_path / "two.npz").read_bytes())     # an .npz named .npy
    cases["arrays.npy"] = "is an .npz archive"
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    cases["objects.npy"] = "holds Python objects"
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps(np.zeros((4, 4, 4), np.float32)))
    cases["pickled.npy"] = "is a Python pickle"
    np.save(tmp_path / "ints.npy", np.zeros((4, 4, 4), np.int32))
    cases["ints.npy"] = "dtype int32"
    _npy_with_header(tmp_path / "huge.npy", (1 << 20, 4, 4, 4), data=bytes(256))   # declares 1 GiB, holds 256 B
    cases["huge.npy"] = "holds 256 bytes of data, but its header declares"
    np.save(tmp_path / "odd.npy", np.zeros((5, 7), np.float32))
    cases["odd.npy"] = "expected shape (4, 4, 4)"
    (tmp_path / "blank.npy").write_bytes(b"")
    cases["blank.npy"] = "cannot read a .npy array (no .npy header; the file is empty)"
    import tracemalloc
    for name, fragment in cases.items():
        tracemalloc.start()
        assert main(["run", str(packed), "--backend", "sim", "--input", str(tmp_path / name)]) == 2, name
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        one_error_line(capsys, f"{name}: {fragment}")
        assert peak < 50e6, (name, peak)


def test_onnx_that_cannot_be_brought_to_a_handled_opset_or_batch(tmp_path, capsys):
    # an op that does not exist at the opsets the passes handle: one line naming it and both opsets
    m = make_model([helper.make_node("RMSNormalization", ["x", "s"], ["y"], name="rms")], [("x", [1, 2, 3, 3])],
                   ["y"], {"s": np.ones(3)}, opset=23)
    m.ir_version = 10
    onnx.save(m, tmp_path / "new.onnx")
    assert main(["pack", str(tmp_path / "new.onnx"), "-o", str(tmp_path / "new.spsmodel")]) == 2
    one_error_line(capsys, "from opset 23 to opset 21")
    # a fixed batch of 2 flattened across the batch axis
    m = make_model([helper.make_node("Flatten", ["x"], ["y"], axis=0)], [("x", [2, 3, 4, 4])], ["y"], {})
    onnx.save(m, tmp_path / "batch.onnx")
    assert main(["pack", str(tmp_path / "batch.onnx"), "-o", str(tmp_path / "batch.spsmodel")]) == 2
    one_error_line(capsys, "fixed batch of 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.onnx", "new.onnx"]


def test_estimate_of_a_damaged_model_or_a_bad_clock(packed, tmp_path, capsys):
    bad = tmp_path / "cut.spsmodel"
    bad.write_bytes(packed.read_bytes()[:200])
    assert main(["estimate", str(bad)]) == 2
    one_error_line(capsys, "cut.spsmodel")
    with pytest.raises(SystemExit) as e:
        main(["estimate", str(packed), "--clock", "0"])
    assert e.value.code == 2 and "--clock wants a clock in MHz above 0" in capsys.readouterr().err


def test_virtual_board_negative_run_time(capsys):
    pytest.importorskip("grpc")
    assert main(["virtual-board", "--port", "0", "--run-ms", "-1"]) == 2
    one_error_line(capsys, "--run-ms -1.0: give a time of 0 or more milliseconds")


def test_edited_descriptor_with_a_broken_kept_chain(packed, tmp_path, capsys):
    """A layer set to read a kept input the layer before never kept: one line naming the layer and the rule."""
    import dataclasses
    from sps_pynq import model_file
    from sps_pynq.hw.descriptor import DESC_BYTES
    program = model_file.load(str(packed))
    d = dataclasses.replace(program.descriptors()[1], resident=True)
    at = program.prog_offset + DESC_BYTES
    program.image = program.image[:at] + d.pack() + program.image[at + DESC_BYTES:]
    bad = tmp_path / "chain.spsmodel"
    model_file.save(program, str(bad))
    assert main(["run", str(bad), "--backend", "sim"]) == 2
    line = one_error_line(capsys, "chain.spsmodel: ")
    assert "layer 1" in line and "resident: the layer before does not keep its output" in line, line
