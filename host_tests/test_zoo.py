"""Model zoo: structure, seeded determinism, non-trivial BatchNorm, ONNX export parity with onnxruntime.

Parity tolerance: |torch - onnxruntime| <= 1e-4 + 1e-4 * |torch| elementwise (float32; measured differences are
below 1e-5 for all zoo models), and the same top-1 class.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from torch import nn  # noqa: E402

from sps_pynq import zoo  # noqa: E402
from sps_pynq.errors import SpsError  # noqa: E402

ATOL = RTOL = 1e-4


def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _check_parity(model, path, shape, **export_kw):
    zoo.export_onnx(model, path, shape, **export_kw)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, *shape]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):                                          # two different inputs, batch 1 each
        x = torch.randn((1, *shape), generator=gen)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        assert got.shape == want.shape == (1, 10)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
        assert got.argmax() == want.argmax()
    return graph


@pytest.mark.parametrize("name", [
    "mnist_cnn", "vgg_small", "resnet20",
    pytest.param("vgg16", marks=pytest.mark.slow), pytest.param("resnet18", marks=pytest.mark.slow)])
def test_export_parity_with_onnxruntime(name, tmp_path):
    model = zoo.build(name)
    graph = _check_parity(model, tmp_path / f"{name}.onnx", zoo.input_shape(name))
    ops = [n.op_type for n in graph.node]
    # BatchNorm stays in the exported graph, so the compiler's folding is exercised
    assert ops.count("Conv") == len(_convs(model)) and ops.count("BatchNormalization") == ops.count("Conv")


@pytest.mark.slow
def test_dynamo_export_parity(tmp_path):
    model = zoo.build("mnist_cnn")
    graph = _check_parity(model, tmp_path / "m.onnx", zoo.input_shape("mnist_cnn"), dynamo=True)
    assert sum(n.op_type == "Conv" for n in graph.node) == 3


def test_dynamo_rejects_old_opset(tmp_path):
    with pytest.raises(SpsError, match="opset >= 18"):
        zoo.export_onnx(zoo.build("mnist_cnn"), tmp_path / "m.onnx", (1, 28, 28), opset=17, dynamo=True)


def test_names_and_input_shapes():
    assert set(zoo.names()) == {"vgg16", "resnet18", "resnet20", "mnist_cnn", "vgg_small"}
    assert zoo.input_shape("vgg16") == (3, 32, 32) and zoo.input_shape("mnist_cnn") == (1, 28, 28)
    with pytest.raises(SpsError, match="unknown zoo model 'vgg17'.*vgg16"):
        zoo.build("vgg17")


def test_vgg16_structure():
    model = zoo.build("vgg16")
    convs = _convs(model)
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(512, 10)]
    assert not model.training
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name, n3x3, n1x1, widths", [
    ("resnet18", 1 + 16, 3, [64, 128, 256, 512]),
    ("resnet20", 1 + 18, 2, [16, 32, 64]),
])
def test_resnet_structure(name, n3x3, n1x1, widths):
    model = zoo.build(name)
    convs = _convs(model)
    assert sum(c.kernel_size == (3, 3) for c in convs) == n3x3
    shortcuts = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(shortcuts) == n1x1 and all(c.stride == (2, 2) for c in shortcuts)
    assert sorted({c.out_channels for c in convs}) == widths
    assert model.fc.in_features == widths[-1]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_mnist_models_are_3x3():
    for name in ("mnist_cnn", "vgg_small"):
        convs = _convs(zoo.build(name))
        assert all(c.kernel_size == (3, 3) for c in convs)
    assert len(_convs(zoo.build("vgg_small"))) == 6


def test_seed_determinism_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = zoo.build("resnet20", seed=0), zoo.build("resnet20", seed=0), zoo.build("resnet20", seed=1)
    assert torch.rand(1) == before                                   # build() does not consume the global RNG
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv1.weight"], sc["conv1.weight"])
    assert zoo.build("mnist_cnn", num_classes=4)(torch.zeros(1, 1, 28, 28)).shape == (1, 4)


def test_batchnorm_statistics_are_non_trivial():
    model = zoo.build("vgg_small")
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert bn.running_mean.abs().max() > 1e-3 and (bn.running_var - 1).abs().max() > 1e-2
        assert (bn.weight - 1).abs().max() > 1e-2 and bn.bias.abs().max() > 1e-3
    # activations stay in a sane range through the net (stats measured, not random)
    with torch.no_grad():
        out = model(torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3)))
    assert 0.05 < float(out.std()) < 20
