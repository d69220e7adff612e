"""`--json` on `pack` and `run`: one JSON document on stdout, nothing else there; errors stay one line on stderr."""
import json

import numpy as np
import pytest

from sps_pynq.cli import main

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_cli_errors import tiny_onnx
    return tiny_onnx(tmp_path_factory.mktemp("json") / "tiny.onnx")


def test_pack_json(tiny, tmp_path, capsys):
    out = tmp_path / "t.spsmodel"
    assert main(["pack", str(tiny), "-o", str(out), "--num-calib", "2", "--json"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert doc["output"] == str(out) and out.exists()
    assert doc["layers"] >= 2 and doc["hw"] == "zcu104" and doc["pps"] == "8x4"
    assert 0 < doc["macs"] <= doc["dense_macs"] and doc["image_bytes"] > 0
    assert any("synthetic" in w for w in doc["warnings"])         # the warning is in the document, not on stderr
    assert "warning" not in cap.err


def test_pack_explain_json(tiny, capsys):
    assert main(["pack", str(tiny), "--explain", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["packs"] is True and doc["blocking"] == [] and len(doc["layers"]) >= 2


def test_run_json(tiny, tmp_path, capsys):
    model = tmp_path / "t.spsmodel"
    assert main(["pack", str(tiny), "-o", str(model), "--num-calib", "2"]) == 0
    capsys.readouterr()
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((2, 4, 4, 4)).astype(np.float32))
    assert main(["run", str(model), "--backend", "sim", "--input", str(x), "--top", "3", "--repeat", "2",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == "sim" and doc["input"] == {"file": str(x), "shape": [2, 4, 4, 4], "dtype": "float32"}
    samples = doc["outputs"]["samples"]
    assert len(samples) == 2 and all(len(s) == 3 for s in samples)
    assert samples[0][0]["value"] >= samples[0][1]["value"]
    assert doc["latency_ms"]["runs"] == 4 and doc["macs"]["nonzero"] <= doc["macs"]["dense"]


def test_run_json_error_is_one_line_on_stderr(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.spsmodel"), "--backend", "sim", "--json"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1
