"""Storage report: each format's bit count on hand-checked tensors, the analysis, the ONNX reader and the CLI."""
import json

import numpy as np
import pytest

from sps_pynq import cli, pps
from sps_pynq.analysis import storage
from sps_pynq.errors import OnnxImportError, SpsError
from sps_pynq.analysis.storage import Bits, LayerWeights

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


# ----------------------------------------------------------------------------------------- formats, by hand
def _tiny():
    """2 x 20 matrix: row 0 nonzero at columns 0 and 17 (16 zeros between: one filler), row 1 at 3 and 19."""
    q = np.zeros((2, 20), dtype=np.int8)
    q[0, [0, 17]] = [5, -3]
    q[1, [3, 19]] = [1, 127]
    return q


def test_sparse_formats_minimal_widths_by_hand():
    b = storage.sparse_bits(_tiny(), "minimal")
    # nnz 4; row index 1 bit (2 rows), column index 5 bits (20 columns), pointers 3 bits (values 0..4)
    assert b["dense"] == Bits(40 * 8, 0)
    assert b["csr"] == Bits(4 * 8, 4 * 5 + 3 * 3)
    assert b["csc"] == Bits(4 * 8, 4 * 1 + 21 * 3)
    assert b["coo"] == Bits(4 * 8, 4 * (1 + 5))
    assert b["bitmap"] == Bits(4 * 8, 40)
    # relative: 4 nonzeros + 1 filler = 5 entries of 8-bit value + 4-bit gap; 3 row pointers of 3 bits (0..5)
    assert b["relative"] == Bits(5 * 8, 5 * 4 + 3 * 3)
    assert b["csr"].total == 32 + 29


def test_sparse_formats_fixed_widths_by_hand():
    b = storage.sparse_bits(_tiny(), "fixed")            # 16-bit indices, 32-bit pointers
    assert b["csr"].index == 4 * 16 + 3 * 32
    assert b["csc"].index == 4 * 16 + 21 * 32
    assert b["coo"].index == 4 * 32
    assert b["bitmap"].index == 40
    assert b["relative"] == Bits(5 * 8, 5 * 4 + 3 * 32)


@pytest.mark.parametrize("cols, fillers", [([0], 0), ([15], 0), ([16], 1), ([0, 16], 0), ([0, 17], 1),
                                           ([31], 1), ([32], 2), ([0, 40, 41], 2), ([], 0)])
def test_relative_fillers(cols, fillers):
    nz = np.zeros((3, 64), dtype=bool)
    nz[1, cols] = True                                   # rows 0 and 2 empty: no entries, no fillers
    assert storage.relative_fillers(nz) == fillers


def test_relative_fillers_restart_per_row():
    nz = np.zeros((2, 40), dtype=bool)
    nz[0, 39] = True                                     # 39 zeros before it: 2 fillers
    nz[1, 0] = True                                      # a new row starts counting at column 0: no filler
    assert storage.relative_fillers(nz) == 2


def test_pattern_formats_by_hand():
    b = storage.pattern_bits(O=4, I=2, P=3, K=2)
    assert b["pps"] == Bits(4 * 2 * 2 * 8, 3 * 9)                       # only the table
    assert b["pattern_id"] == Bits(4 * 2 * 2 * 8, 4 * 2 * 2 + 3 * 9)     # ceil(log2 3) = 2 bits per kernel
    assert storage.pattern_bits(2, 2, 1, 4)["pattern_id"].index == 9     # one pattern: no id bits
    assert storage.pattern_bits(2, 2, 16, 4)["pattern_id"].index == 4 * 4 + 16 * 9


def test_index_widths():
    assert [storage.index_bits(n) for n in (1, 2, 3, 4, 5, 4608)] == [1, 1, 2, 2, 3, 13]
    assert [storage.pointer_bits(n) for n in (0, 1, 4, 7, 8)] == [1, 1, 3, 3, 4]
    with pytest.raises(SpsError, match="index width.*minimal, fixed"):
        storage.sparse_bits(_tiny(), "tiny")


def test_quantize_int8_zeros_and_range():
    w = np.array([[0.5, -1.0, 0.003], [0.0, 0.0, 0.0]])
    q = storage.quantize_int8(w)
    assert q.dtype == np.int8 and q.tolist() == [[64, -127, 0], [0, 0, 0]]


# ------------------------------------------------------------------------------------------------- analysis
def _layers(seed=0):
    rng = np.random.default_rng(seed)
    return [LayerWeights("c0", rng.standard_normal((8, 3, 3, 3))),
            LayerWeights("c1", rng.standard_normal((16, 8, 3, 3))),
            LayerWeights("sc", rng.standard_normal((16, 8, 1, 1))),
            LayerWeights("dw", rng.standard_normal((16, 1, 3, 3)), groups=16),
            LayerWeights("fc", rng.standard_normal((10, 16)))]


def test_analyze_prunes_3x3_and_keeps_others_dense():
    reports = storage.analyze(_layers(), P=4, K=3)
    assert [r.structure for r in reports] == ["PPS(4,3)", "PPS(4,3)", "dense (1x1)", "dense (groups=16)",
                                              "dense (fc)"]
    c1 = reports[1]
    proj = pps.project(_layers()[1].weights, 4, 3)
    assert c1.masks == proj.masks
    assert c1.bits["pps"] == Bits(16 * 8 * 3 * 8, 4 * 9)
    assert c1.bits["csr"] == storage.sparse_bits(storage.quantize_int8(proj.weights))["csr"]
    assert c1.nonzeros <= 16 * 8 * 3
    for r in reports[2:]:                                     # dense in every format, no index
        assert {f: b for f, b in r.bits.items()} == {f: Bits(r.weights * 8, 0) for f in storage.FORMATS}
    first_dense = storage.analyze(_layers(), P=4, K=3, first_layer_dense=True)
    assert first_dense[0].structure == "dense (first layer)" and first_dense[1].structure == "PPS(4,3)"


def test_report_totals_and_comparison():
    reports = storage.analyze(_layers(), P=4, K=3)
    d = storage.report_dict(reports, "tiny", 4, 3, "minimal", False)
    rows = {r["format"]: r for r in d["formats"]}
    assert rows["pps"]["index_bits"] == 2 * 4 * 9
    assert rows["csr"]["total_bits"] == sum(r.bits["csr"].total for r in reports)
    others = [rows[f]["index_bits"] / rows["pps"]["index_bits"] for f in storage.SPARSE_FORMATS]
    cmp_ = d["comparison"]["whole_model"]
    assert cmp_["index_ratio_vs_best_other"] == pytest.approx(min(others))
    assert cmp_["index_ratio_geomean"] == pytest.approx(float(np.exp(np.mean(np.log(others)))))
    assert d["comparison"]["paper"] == {"index_ratio": 22044.0, "total_ratio": 3.67}
    text = storage.format_report(d, per_layer=True)
    assert "PPS (table only)" in text and "22,044x" in text and "c1" in text


def test_analyze_rejects_nothing_to_do():
    with pytest.raises(SpsError, match="no conv"):
        storage.analyze([])


# ----------------------------------------------------------------------------------------------------- ONNX
def _tiny_onnx(path, rng=np.random.default_rng(1)):
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((8, 10)).astype(np.float32)                # MatMul-style (I, O)
    nodes = [helper.make_node("Conv", ["input", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["d"]),
             helper.make_node("Flatten", ["d"], ["e"]),
             helper.make_node("Gemm", ["e", "fc"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                               numpy_helper.from_array(fc, "fc")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return w1, w2, fc


def test_layers_from_onnx(tmp_path):
    w1, w2, fc = _tiny_onnx(tmp_path / "t.onnx")
    layers = storage.layers_from_onnx(str(tmp_path / "t.onnx"))
    assert [l.name for l in layers] == ["conv1", "conv2", "fc"]
    assert np.array_equal(layers[1].weights, w2) and np.array_equal(layers[2].weights, fc.T)   # Gemm -> (O, I)


def test_layers_from_onnx_errors(tmp_path):
    with pytest.raises(OnnxImportError, match=r"missing\.onnx: no such ONNX file"):
        storage.layers_from_onnx(str(tmp_path / "missing.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"not a model at all")
    with pytest.raises(OnnxImportError, match=r"bad\.onnx: not a readable ONNX model"):
        storage.layers_from_onnx(str(tmp_path / "bad.onnx"))
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(OnnxImportError, match="no Conv, Gemm or MatMul"):
        storage.layers_from_onnx(str(tmp_path / "relu.onnx"))


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_table_and_json(tmp_path, capsys):
    _tiny_onnx(tmp_path / "t.onnx")
    assert cli.main(["storage", str(tmp_path / "t.onnx"), "--pps", "4x2", "--layers"]) == 0
    out = capsys.readouterr().out
    for title in storage.FORMAT_TITLES.values():
        assert title in out
    assert "PPS(4,2)" in out and "paper 22,044x" in out and "paper 3.67x" in out and "conv2" in out
    assert cli.main(["storage", str(tmp_path / "t.onnx"), "--pps", "4x2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["pps"] == {"P": 4, "K": 2} and [r["format"] for r in d["formats"]] == storage.FORMATS
    pps_row = d["formats"][-1]
    assert pps_row["index_bits"] == 2 * 4 * 9 and pps_row["total_ratio_vs_pps"] == 1.0
    assert [l["structure"] for l in d["layers"]] == ["PPS(4,2)", "PPS(4,2)", "dense (fc)"]


@pytest.mark.parametrize("argv, words", [
    (["storage", "nope/missing.onnx"], "missing.onnx: no such ONNX file"),
    (["storage"], "exactly one of"),
    (["storage", "x.onnx", "--model", "vgg16"], "exactly one of"),
])
def test_cli_errors_exit_2_without_traceback(argv, words, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_cli_bad_onnx_file(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    assert cli.main(["storage", str(tmp_path / "bad.onnx")]) == 2
    err = capsys.readouterr().err
    assert "bad.onnx: not a readable ONNX model" in err and "Traceback" not in err


def test_cli_bad_pps_spec(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["storage", "--model", "mnist_cnn", "--pps", "8x11"])
    assert e.value.code == 2 and "K must be in 1..9" in capsys.readouterr().err


def test_zoo_and_its_onnx_export_give_the_same_counts(tmp_path, capsys):
    pytest.importorskip("torch")
    from sps_pynq import zoo
    zoo.export_onnx(zoo.build("mnist_cnn"), tmp_path / "m.onnx", zoo.input_shape("mnist_cnn"))
    assert cli.main(["storage", "--model", "mnist_cnn", "--json"]) == 0
    from_zoo = json.loads(capsys.readouterr().out)
    assert cli.main(["storage", str(tmp_path / "m.onnx"), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert from_zoo["formats"] == from_onnx["formats"]
    assert cli.main(["storage", "--model", "no_such_net"]) == 2
    assert "unknown zoo model 'no_such_net'" in capsys.readouterr().err
