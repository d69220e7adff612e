"""`sps-pynq pack` and `sps-pynq inspect` through the CLI entry point: outputs, options and one-line errors."""
import json

import numpy as np
import onnx
import pytest
from onnx import helper

from sps_pynq import model_file
from sps_pynq.cli import main
from sps_pynq.compiler.testing import make_model

RNG = np.random.default_rng(6)


@pytest.fixture
def onnx_file(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
             helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1)]
    inits = {"w1": RNG.standard_normal((8, 3, 3, 3)), "w2": RNG.standard_normal((8, 8, 3, 3)),
             "B": RNG.standard_normal((4, 8 * 4 * 4))}
    path = tmp_path / "tiny.onnx"
    onnx.save(make_model(nodes, [("x", [1, 3, 8, 8])], ["y"], inits), path)
    return path


def test_pack_then_inspect(onnx_file, tmp_path, capsys):
    out = tmp_path / "tiny.spsmodel"
    assert main(["pack", str(onnx_file), "-o", str(out), "--pps", "4x2", "--no-fill-rows", "--num-calib", "3"]) == 0
    captured = capsys.readouterr()
    assert "tiny.spsmodel: 5 layers, 4x2 for zcu104" in captured.out
    assert "warning: no calibration data" in captured.err and "Traceback" not in captured.err
    program = model_file.load(out)
    assert [d.patterns for d in program.descriptors()][:2] == [4, 4]
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("conv1", "CONV+relu", "3x8x8", "8x8x8", "4/2", "ADD", "MAXPOOL", "fc", "dense", "buffers:",
                 "input0", "output0", "total:", "zcu104: 16x16 array"):
        assert word in text, word
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    conv1 = info["layers"][0]
    assert (conv1["P"], conv1["K"], conv1["dense_macs"], conv1["sparse_macs"]) == (4, 2, 8 * 64 * 3 * 9,
                                                                                  8 * 64 * 3 * 2)
    assert conv1["weight_bytes"] > 0 and info["totals"]["sparse_macs"] < info["totals"]["dense_macs"]
    assert info["hw"]["rows"] == 16 and {b["name"] for b in info["buffers"]} >= {"input0", "output0"}


def test_dense_first_layer_dense_and_calib(onnx_file, tmp_path, capsys):
    calib = tmp_path / "calib.npy"
    np.save(calib, RNG.standard_normal((4, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "d.spsmodel"
    assert main(["pack", str(onnx_file), "-o", str(out), "--dense", "--calib", str(calib)]) == 0
    assert "warning" not in capsys.readouterr().err
    program = model_file.load(out)
    assert not any(d.pps for d in program.descriptors())
    assert program.metadata["calibration"]["synthetic"] is False and program.metadata["pps"] == "dense"
    out2 = tmp_path / "f.spsmodel"
    assert main(["pack", str(onnx_file), "-o", str(out2), "--first-layer-dense", "--num-calib", "2"]) == 0
    descs = model_file.load(out2).descriptors()
    assert (descs[0].pps, descs[1].pps) == (False, True)


def one_error_line(capsys, fragment):
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if "warning" not in line]
    assert len(err) == 1 and "Traceback" not in err[0] and fragment in err[0], err
    return err[0]


def test_missing_onnx_file(tmp_path, capsys):
    assert main(["pack", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "x.spsmodel")]) == 2
    one_error_line(capsys, "none.onnx: no such ONNX file")
    assert not (tmp_path / "x.spsmodel").exists()


def test_unsupported_model_leaves_no_output(tmp_path, capsys):
    path = tmp_path / "sig.onnx"
    nodes = [helper.make_node("Sigmoid", ["x"], ["y"], name="sig")]
    onnx.save(make_model(nodes, [("x", [1, 3, 4, 4])], ["y"], {}), path)
    out = tmp_path / "sig.spsmodel"
    assert main(["pack", str(path), "-o", str(out)]) == 2
    one_error_line(capsys, "node 'sig' (Sigmoid)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sig.onnx"]


def test_model_choice_errors(onnx_file, tmp_path, capsys):
    assert main(["pack", "-o", str(tmp_path / "x.spsmodel")]) == 2
    one_error_line(capsys, "give exactly one model")
    assert main(["pack", str(onnx_file), "--model", "vgg16", "-o", str(tmp_path / "x.spsmodel")]) == 2
    one_error_line(capsys, "give exactly one model")
    assert main(["pack", "--model", "nonet", "-o", str(tmp_path / "x.spsmodel")]) == 2
    one_error_line(capsys, "unknown zoo model 'nonet'; known:")


def test_bad_pps_spec_is_a_usage_error(onnx_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["pack", str(onnx_file), "-o", str(tmp_path / "x.spsmodel"), "--pps", "eight"])
    assert e.value.code == 2 and "--pps" in capsys.readouterr().err


def test_inspect_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.spsmodel"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["inspect", str(bad)]) == 2
    one_error_line(capsys, "bad.spsmodel")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet20"])
def test_pack_zoo_models_from_the_cli(name, tmp_path, capsys):
    out = tmp_path / f"{name}.spsmodel"
    assert main(["pack", "--model", name, "--pps", "8x4", "-o", str(out), "--num-calib", "4"]) == 0
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "8/4" in text and "total:" in text


def test_explain_lists_every_blocking_node_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "bad.onnx"
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="dw", group=3, pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c"], ["r"], name="lrelu", alpha=0.1),
             helper.make_node("AveragePool", ["r"], ["p"], name="ap", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["p", "k"], ["y"], name="add_map")]
    inits = {"w": RNG.standard_normal((3, 1, 3, 3)), "k": RNG.standard_normal((1, 1, 4, 4))}
    onnx.save(make_model(nodes, [("x", [1, 3, 4, 4])], ["y"], inits), path)
    assert main(["pack", str(path), "--explain"]) == 2
    out = capsys.readouterr().out
    assert "does not pack; 4 blocking nodes" in out
    for name, why in (("'dw'", "group=3"), ("'lrelu'", "not exactly expressible"), ("'ap'", "different numbers"),
                      ("'add_map'", "not one scale and one shift per channel")):
        assert name in out and why in out
    assert out.count("fix: ") == 4 and "[1, 3, 4, 4]" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]
    assert main(["pack", str(path), "-o", str(tmp_path / "bad.spsmodel")]) == 2
    one_error_line(capsys, "3 more node(s) block this model: `sps-pynq pack --explain")


def test_explain_a_model_that_packs_lists_its_layers_and_what_they_fold(tmp_path, capsys):
    path = tmp_path / "ok.onnx"
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "b"], ["cb"], name="bias"),
             helper.make_node("Relu", ["cb"], ["y"], name="relu")]
    onnx.save(make_model(nodes, [("x", [1, 3, 4, 4])], ["y"], {"w": RNG.standard_normal((4, 3, 3, 3)),
                                                              "b": RNG.standard_normal((4, 1, 1))}, opset=9), path)
    assert main(["pack", str(path), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "packs into 1 layers" in out and "conv: CONV [3, 4, 4] -> [4, 4, 4]" in out and "<- conv, bias, relu" in out


def test_pack_without_output_says_what_to_give(onnx_file, capsys):
    assert main(["pack", str(onnx_file)]) == 2
    one_error_line(capsys, "-o/--output")
