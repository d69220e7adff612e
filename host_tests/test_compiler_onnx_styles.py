"""The ONNX files people have (issue 12): models built with onnx.helper at opsets 7, 8, 9 and 13 in the styles of
model zoos, tf2onnx/keras2onnx and older exporters (Conv + Add bias, Reshape of a constant weight, MatMul + Add,
Mul/Add affines, an NHWC Transpose input, input Sub/Div, ReLU6 as Clip), each packed and run on `sim` through
Session, against onnxruntime on the model itself.

Tolerance (the end-to-end tests' rule): 8% of max |onnxruntime| plus 3 output LSB, for input, weight and per-layer
output rounding through a few int8 layers; these models are packed dense, so no PPS projection is involved."""
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper

from sps_pynq.compiler import compile_model, ir, passes
from sps_pynq.compiler.testing import make_model, sim_against_onnxruntime
from sps_pynq.errors import OnnxImportError

pytestmark = pytest.mark.filterwarnings("ignore:no calibration data")
OPSETS = [7, 8, 9, 13]


def rng(name):
    return np.random.default_rng(sum(map(ord, name)))


def model_at(nodes, inputs, outputs, inits, opset):
    """As the exporters of that time wrote it: IR version 3 (initializers listed as graph inputs) up to opset 7."""
    m = make_model(nodes, inputs, outputs, inits, opset=opset)
    m.ir_version = 3 if opset < 8 else (4 if opset < 11 else 8)
    if opset < 8:
        m.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                             for t in m.graph.initializer)
    return m


def close_to_onnxruntime(model, shape, n=6, **options):
    r = rng(str(shape) + str(n))
    xs = r.standard_normal((n,) + tuple(shape)).astype(np.float32)
    calib = np.concatenate([r.standard_normal((16,) + tuple(shape)).astype(np.float32), xs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program, outs = sim_against_onnxruntime(model, xs, calib=calib, pps=None, **options)
    for got, want, scale in outs:
        err = float(np.abs(got - want).max())
        assert err <= 0.08 * float(np.abs(want).max()) + 3 * scale, (err, scale, float(np.abs(want).max()))
    return program


def mnist_zoo_style(opset):
    """The ONNX model zoo's MNIST (opset 8): each conv's bias a separate Add, the FC weight a Reshape of an
    initializer (a constant subgraph), Reshape to [1, 256], MatMul + Add."""
    r = rng("mnist")
    nodes = [helper.make_node("Reshape", ["fc_w_raw", "fc_w_shape"], ["fc_w"], name="Times212_reshape1"),
             helper.make_node("Conv", ["x", "w1"], ["c1"], name="Convolution28", kernel_shape=[5, 5],
                              auto_pad="SAME_UPPER"),
             helper.make_node("Add", ["c1", "b1"], ["a1"], name="Plus30"),
             helper.make_node("Relu", ["a1"], ["r1"], name="ReLU32"),
             helper.make_node("MaxPool", ["r1"], ["p1"], name="Pooling66", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], name="Convolution110", kernel_shape=[5, 5],
                              auto_pad="SAME_UPPER"),
             helper.make_node("Add", ["c2", "b2"], ["a2"], name="Plus112"),
             helper.make_node("Relu", ["a2"], ["r2"], name="ReLU114"),
             helper.make_node("MaxPool", ["r2"], ["p2"], name="Pooling160", kernel_shape=[3, 3], strides=[3, 3]),
             helper.make_node("Reshape", ["p2", "flat_shape"], ["f"], name="Times212_reshape0"),
             helper.make_node("MatMul", ["f", "fc_w"], ["mm"], name="Times212"),
             helper.make_node("Add", ["mm", "fc_b"], ["y"], name="Plus214")]
    inits = {"w1": r.standard_normal((8, 1, 5, 5)) / 5, "b1": r.standard_normal((8, 1, 1)) * 0.1,
             "w2": r.standard_normal((16, 8, 5, 5)) / 14, "b2": r.standard_normal((16, 1, 1)) * 0.1,
             "fc_w_raw": r.standard_normal((16, 4, 4, 10)) / 16, "fc_w_shape": np.array([256, 10], np.int64),
             "flat_shape": np.array([1, 256], np.int64), "fc_b": r.standard_normal((1, 10)) * 0.1}
    return model_at(nodes, [("x", [1, 1, 28, 28])], ["y"], inits, opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_mnist_zoo_style(opset):
    m = mnist_zoo_style(opset)
    program = close_to_onnxruntime(m, (1, 28, 28))
    assert [l.name for l in program.layers] == ["Convolution28", "Pooling66", "Convolution110", "Pooling160",
                                                "Times212"]
    # the bias Adds and the ReLUs are in the convs, the constant Reshape and the MatMul's Add in the FC
    assert program.layers[0].sources == ["Convolution28", "Plus30", "ReLU32"]
    assert "Plus214" in program.layers[-1].sources


def keras_style(opset, normalize_padded=True):
    """Input normalization (Sub mean, Div std), Conv, BN exported as Mul + Add, ReLU6 as Clip, BatchNormalization,
    a pool, Flatten, Gemm and a final Softmax."""
    r = rng("keras")
    clip = (helper.make_node("Clip", ["s1"], ["r1"], name="relu6", min=0.0, max=6.0) if opset < 11 else
            helper.make_node("Clip", ["s1", "zero", "six"], ["r1"], name="relu6"))
    bn_attrs = {"epsilon": 1e-3}
    nodes = [helper.make_node("Sub", ["x", "mean"], ["xs"], name="sub_mean"),
             helper.make_node("Div", ["xs", "std"], ["xn"], name="div_std"),
             helper.make_node("Conv", ["xn", "w1"], ["c1"], name="conv1",
                              pads=[1, 1, 1, 1] if normalize_padded else [0, 0, 0, 0]),
             helper.make_node("Mul", ["c1", "scale"], ["m1"], name="bn1_mul"),
             helper.make_node("Add", ["m1", "shift"], ["s1"], name="bn1_add"),
             clip,
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c2", "g", "b", "m", "v"], ["n2"], name="bn2", **bn_attrs),
             helper.make_node("Relu", ["n2"], ["r2"], name="relu2"),
             helper.make_node("AveragePool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1)]
    hw = 6 if normalize_padded else 8
    inits = {"mean": np.array([0.5, -0.2, 0.1]).reshape(1, 3, 1, 1), "std": np.array([0.8, 1.3, 2.0]).reshape(3, 1, 1),
             "w1": r.standard_normal((6, 3, 3, 3)) / 5, "scale": r.uniform(0.5, 1.5, (6, 1, 1)),
             "shift": r.standard_normal((6, 1, 1)) * 0.3, "zero": np.array(0, np.float32),
             "six": np.array(6, np.float32), "w2": r.standard_normal((6, 6, 3, 3)) / 7,
             "b2": r.standard_normal(6) * 0.1, "g": r.uniform(0.5, 1.5, 6), "b": r.standard_normal(6) * 0.1,
             "m": r.standard_normal(6) * 0.1, "v": r.uniform(0.5, 2, 6),
             "fc_w": r.standard_normal((10, 6 * 3 * 3)) / 7, "fc_b": r.standard_normal(10) * 0.1}
    return model_at(nodes, [("x", [1, 3, hw, hw])], ["y"], inits, opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_keras_style_affines_normalization_relu6_softmax(opset):
    program = close_to_onnxruntime(keras_style(opset), (3, 6, 6))
    # the padded first conv: its Div folds in, the Sub runs as a 1x1 Conv of its own; Mul/Add, Clip, BN fold
    assert [l.name for l in program.layers] == ["sub_mean", "conv1", "conv2", "pool", "fc"]
    assert {"div_std", "bn1_mul", "bn1_add", "relu6"} <= set(program.layers[1].sources)
    assert program.host_steps[0]["op"] == "softmax"
    assert program.metadata["layers"][1]["out_shape"] == [6, 6, 6]


@pytest.mark.parametrize("opset", [8, 13])
def test_input_normalization_folds_into_an_unpadded_first_conv(opset):
    program = close_to_onnxruntime(keras_style(opset, normalize_padded=False), (3, 8, 8))
    assert [l.name for l in program.layers] == ["conv1", "conv2", "pool", "fc"]
    assert {"sub_mean", "div_std"} <= set(program.layers[0].sources)


def nhwc_style(opset):
    """tf2onnx: an NHWC input transposed to NCHW, Conv + Add bias, Transpose back to NHWC, Reshape, MatMul + Add."""
    r = rng("nhwc")
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="input_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xt", "w"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Add", ["c", "b"], ["cb"], name="conv_bias"),
             helper.make_node("Relu", ["cb"], ["r"], name="relu"),
             helper.make_node("Transpose", ["r"], ["rt"], name="to_nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["rt", "flat"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc_w"], ["mm"], name="dense"),
             helper.make_node("Add", ["mm", "fc_b"], ["y"], name="dense_bias")]
    inits = {"w": r.standard_normal((4, 3, 3, 3)) / 5, "b": r.standard_normal((4, 1, 1)) * 0.1,
             "flat": np.array([1, 5 * 6 * 4], np.int64), "fc_w": r.standard_normal((5 * 6 * 4, 7)) / 11,
             "fc_b": r.standard_normal(7) * 0.1}
    return model_at(nodes, [("x", [1, 5, 6, 3])], ["y"], inits, opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_nhwc_input_and_transpose_before_dense(opset):
    program = close_to_onnxruntime(nhwc_style(opset), (5, 6, 3))
    # the input transpose is a layer of its own (a one-hot Conv); the one before the dense layer is in its weights
    assert [l.name for l in program.layers] == ["input_nchw", "conv", "dense"]
    assert program.inputs[0].shape == (5, 6, 3)
    assert "to_nhwc" in program.layers[-1].sources


def test_transpose_layer_is_exact():
    """The NHWC -> NCHW layer moves int8 values without changing them."""
    from sps_pynq.runtime.session import Session
    m = model_at([helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[0, 3, 1, 2])],
                 [("x", [1, 4, 5, 3])], ["y"], {}, 13)
    x = rng("exact").standard_normal((2, 4, 5, 3)).astype(np.float32)
    program = compile_model(m, calib=x, pps=None)
    assert program.outputs[0].scale == program.inputs[0].scale
    with Session(program, backend="sim") as s:
        q = np.clip(np.rint(x / program.inputs[0].scale), -128, 127).astype(np.int8)
        got = s.run_int8(q)
    assert np.array_equal(got.reshape(2, 3, 4, 5), q.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("opset", [7, 9, 13])
def test_matmul_add_on_a_flat_input_and_a_batch_norm_after_it(opset):
    r = rng("mlp")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
             helper.make_node("BatchNormalization", ["hb", "g", "b", "m", "v"], ["hn"], name="bn"),
             helper.make_node("Relu", ["hn"], ["hr"], name="relu"),
             helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"], name="fc2")]
    inits = {"w1": r.standard_normal((12, 16)) / 3, "b1": r.standard_normal(16) * 0.1,
             "g": r.uniform(0.5, 1.5, 16), "b": r.standard_normal(16) * 0.1, "m": r.standard_normal(16) * 0.1,
             "v": r.uniform(0.5, 2, 16), "w2": r.standard_normal((16, 5)) / 4, "b2": r.standard_normal(5) * 0.1}
    program = close_to_onnxruntime(model_at(nodes, [("x", [1, 12])], ["y"], inits, opset), (12,))
    assert [l.name for l in program.layers] == ["fc1", "fc2"]
    assert {"fc1_bias", "bn", "relu"} <= set(program.layers[0].sources)


def test_every_opset_the_installed_onnx_knows_is_converted_or_relabelled():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    seen = set()
    for opset in range(7, onnx.defs.onnx_opset_version() + 1):
        m = make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], {"w": np.ones((3, 2, 3, 3))}, opset=opset)
        m.ir_version = 8 if opset < 21 else 10
        g = passes.run_pipeline(ir.import_onnx(m))
        assert g.ops() == ["Conv"] and ir.MIN_OPSET <= g.opset <= ir.MAX_OPSET
        seen.add(g.opset)
    assert seen == set(range(ir.MIN_OPSET, ir.MAX_OPSET + 1))


def test_a_failed_conversion_names_the_op_and_the_opsets():
    m = make_model([helper.make_node("RMSNormalization", ["x", "s"], ["y"], name="rms")], [("x", [1, 2, 3, 3])],
                   ["y"], {"s": [1.0, 1.0, 1.0]}, opset=23)
    m.ir_version = 10
    with pytest.raises(OnnxImportError, match=r"from opset 23 to opset 21.*RMSNormalization does not exist at "
                                              r"opset 21"):
        ir.import_onnx(m)
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    with pytest.raises(OnnxImportError, match="unknown to the installed onnx"):
        ir.import_onnx(m)
