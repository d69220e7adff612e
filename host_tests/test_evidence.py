"""The quick path of scripts/evidence_mnist.py: real MNIST images, PPS(8,4) fine-tuned, int8 on the sim backend.

It trains a real model (~20 s on 2 free cores), so it is marked slow; CI still runs it.
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script():
    spec = importlib.util.spec_from_file_location("evidence_mnist", os.path.join(ROOT, "scripts", "evidence_mnist.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_mnist_split_is_fixed_and_stratified():
    from sps_pynq import data
    a, b = data.mnist(), data.mnist()
    np.testing.assert_array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(a.x_train[:5], b.x_train[:5])
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() == 1.0
    assert np.bincount(a.y_test).tolist() == [100] * 10
    assert np.bincount(a.y_train).tolist() == [400] * 10
    d = data.digits()
    assert d.x_train.shape[1:] == (1, 8, 8) and len(d.x_train) + len(d.x_test) == 1797


def test_projection_only_accuracy_is_deterministic():
    """Projection of the same seeded model gives the same predictions on real images, bit for bit."""
    from sps_pynq import data, zoo
    from sps_pynq.prune import prune_pps
    ev = load_script()
    x = torch.from_numpy(data.mnist().x_test[:200])
    preds = []
    for _ in range(2):
        model = zoo.build("mnist_cnn", seed=1)
        prune_pps(model, P=8, K=4)
        preds.append(model.eval()(x).detach().numpy())
    np.testing.assert_array_equal(preds[0], preds[1])
    assert ev.accuracy(preds[0].argmax(1), preds[1].argmax(1)) == 100.0


@pytest.mark.slow
def test_quick_evidence_reaches_the_floor():
    pytest.importorskip("sps_pynq.compiler")
    ev = load_script()
    lines = []
    results = ev.run(ev.QUICK, log=lines.append)
    row = results["models"]["mnist_cnn"]
    k4 = row["K"][4]
    text = "\n".join(lines) + "\n" + ev.table(results)
    assert k4["finetuned_int8_sim"] is not None, "int8 on sim did not run:\n" + text
    assert k4["finetuned_int8_sim"] >= 95.0, text
    assert k4["finetuned_fp32"] >= 95.0, text
    assert row["dense_fp32"] >= 95.0, text
    # PPS(8,4) int8 stays near its fp32 model (the full run holds 0.3 points; the floor here is loose)
    assert abs(k4["finetuned_int8_sim"] - k4["finetuned_fp32"]) <= 1.5, text
    assert "| mnist_cnn | PPS(8,4) |" in ev.table(results)


def _fake_run(seed, dense, tuned, sim):
    """A results dict shaped like run()'s, K keys as strings (as after a JSON round trip)."""
    return {"config": {"P": 8, "seed": seed},
            "models": {"m": {"dense_fp32": dense, "dense_int8_sim": dense,
                             "K": {str(k): {"projected_fp32": 10.0, "finetuned_fp32": t, "finetuned_int8_sim": s}
                                   for k, t, s in zip((4, 2), tuned, sim)}}}}


def test_seed_summary_and_plot_of_several_runs(tmp_path):
    """The end of a multi-seed run: the spread table's arithmetic, and the plot is written."""
    pytest.importorskip("matplotlib")
    ev = load_script()
    runs = [_fake_run(0, 98.0, (97.8, 97.0), (97.9, None)), _fake_run(1, 97.0, (97.4, 96.0), (97.0, None))]
    text = ev.seed_summary(runs)
    assert "seeds 0, 1" in text
    assert "| m | PPS(8,4) | +0.10 (-0.2 .. +0.4) | -0.15 (-0.4 .. +0.1) |" in text
    assert "| m | PPS(8,2) | -1.00 (-1.0 .. -1.0) | n/a |" in text      # a missing sim run is not averaged in
    ev.plot(runs, str(tmp_path / "k.png"))
    assert (tmp_path / "k.png").stat().st_size > 10_000


def test_models_option_names_runnable_mnist_models():
    """--models offers every model with a recipe, each a 1x28x28 zoo model; --quick refuses it (mnist_cnn only)."""
    from sps_pynq import zoo
    ev = load_script()
    assert "resnet20_mnist" in ev.MODELS and set(ev.Config().models) <= set(ev.MODELS)
    for name in ev.MODELS:
        assert zoo.input_shape(name) == (1, 28, 28) and name in ev.Config().ft_epochs
    with pytest.raises(SystemExit):
        ev.main(["--quick", "--models", "vgg_small"])
    with pytest.raises(SystemExit):
        ev.main(["--models", "resnet18"])
