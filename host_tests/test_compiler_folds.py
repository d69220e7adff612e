"""The passes of issue 12, each on a tiny onnx.helper graph: the structure it leaves and the numbers (onnxruntime on
the original model against onnxruntime on the rewritten IR, or the int8 program on sim), and prepare.py's
import steps (constant folding by the reference evaluator, the batch, the opset)."""
import numpy as np
import onnx
import pytest
from onnx import helper

from sps_pynq.compiler import compile_model, ir, lower, passes, prepare, project_onnx
from sps_pynq.compiler.testing import make_model, ort_run, run_reference, sim_against_onnxruntime
from sps_pynq.errors import OnnxImportError, UnsupportedOpError

pytestmark = pytest.mark.filterwarnings("ignore:no calibration data")
RNG = np.random.default_rng(12)


@pytest.fixture(autouse=True)
def _rng_per_test(request):
    """Each test its own generator (seeded by its name), whichever tests an xdist worker ran before it."""
    global RNG
    RNG = np.random.default_rng(sum(map(ord, request.node.name)))


def x_of(shape):
    return RNG.standard_normal(shape).astype(np.float32)


def same_numbers(model, g, shape, atol=1e-4):
    x = x_of(shape)
    want = ort_run(model, x)
    got = ort_run(ir.export_onnx(g), x.reshape(g.shapes[g.inputs[0]]))
    for a, b in zip(want, got):
        np.testing.assert_allclose(np.ravel(b), np.ravel(a), rtol=1e-4, atol=atol)


def pipeline(model):
    return passes.run_pipeline(ir.import_onnx(model))


def conv(x, y, name, w="w", **attrs):
    return helper.make_node("Conv", [x, w], [y], name=name, **attrs)


# -- prepare: constant folding, batch, opset --------------------------------------------------------------------

def test_every_all_constant_node_is_folded_by_the_reference_evaluator():
    # a weight made by Transpose, Reshape, Cast and Concat of initializers, a Constant of value_floats (which the
    # importer refused before), and a Shape -> Gather -> Concat chain of a static shape feeding a Reshape
    w = RNG.standard_normal((3, 3, 2, 4))
    nodes = [helper.make_node("Transpose", ["w_hwio"], ["w_t"], perm=[3, 2, 0, 1]),
             helper.make_node("Cast", ["w_t"], ["w_c"], to=onnx.TensorProto.FLOAT),
             helper.make_node("Constant", [], ["extra"], value_floats=[0.0] * (1 * 2 * 3 * 3)),
             helper.make_node("Reshape", ["extra", "shape"], ["extra4"]),
             helper.make_node("Concat", ["w_c", "extra4"], ["w"], axis=0),
             conv("x", "c", "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["flat_shape"], axis=0),
             helper.make_node("Reshape", ["c", "flat_shape"], ["y"])]
    inits = {"w_hwio": w, "shape": np.array([1, 2, 3, 3], np.int64), "zero": np.array(0, np.int64),
             "axes": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    m = make_model(nodes, [("x", [1, 2, 5, 5])], ["y"], inits, opset=13)
    g = ir.import_onnx(m)
    assert g.ops() == ["Conv", "Reshape"]                      # nothing per-op was written for any of them
    assert g.initializers["w"].shape == (5, 2, 3, 3)
    np.testing.assert_array_equal(g.initializers["flat_shape"], [1, -1])
    same_numbers(m, passes.run_pipeline(g), (1, 2, 5, 5))


def test_folding_leaves_what_the_evaluator_cannot_run_and_random_ops():
    nodes = [helper.make_node("RandomNormal", [], ["r"], shape=[1, 2, 3, 3]),
             helper.make_node("Add", ["x", "r"], ["y"], name="add")]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {})
    assert prepare.fold_constants(m, "m") == 0 and len(m.graph.node) == 2


def test_a_fixed_batch_runs_one_sample_at_a_time_when_the_samples_are_independent():
    nodes = [conv("x", "c", "conv"), helper.make_node("Flatten", ["c"], ["y"], axis=1)]
    m = make_model(nodes, [("x", [4, 2, 3, 3])], ["y"], {"w": RNG.standard_normal((3, 2, 1, 1))})
    g = ir.import_onnx(m)
    assert g.shapes["x"] == (1, 2, 3, 3) and g.onnx_shapes["x"] == (4, 2, 3, 3)
    nodes[1] = helper.make_node("Flatten", ["c"], ["y"], axis=0)          # [1, 4*3*3*3]: mixes the samples
    with pytest.raises(OnnxImportError, match=r"fixed batch of 4, and tensor 'y' \(output of Flatten.*\[1, 108\] "
                                              r"with it but \[1, 27\]"):
        ir.import_onnx(make_model(nodes, [("x", [4, 2, 3, 3])], ["y"], {"w": RNG.standard_normal((3, 2, 1, 1))}))


def test_a_vector_input_without_a_sample_dimension_is_refused():
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [5])], ["y"], {})
    with pytest.raises(OnnxImportError, match="'x' has 1 dimension"):
        ir.import_onnx(m)


def test_newer_opset_with_type_only_changes_is_relabelled():
    m = make_model([conv("x", "y", "conv")], [("x", [1, 2, 3, 3])], ["y"], {"w": np.ones((2, 2, 1, 1))}, opset=25)
    m.ir_version = 11
    assert prepare.convert_opset(m, "m").opset_import[0].version == prepare.MAX_OPSET
    assert prepare._changed_beyond("Conv", 25, 21) is None
    assert prepare._changed_beyond("Attention", 24, 21) == "does not exist at opset 21"


# -- folds into a layer ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("op,const_first", [("Add", False), ("Add", True), ("Sub", False), ("Sub", True),
                                            ("Mul", False), ("Mul", True), ("Div", False)])
@pytest.mark.parametrize("shape", [(4, 1, 1), (1, 4, 1, 1), (1,), ()])
def test_per_channel_constant_after_a_conv_folds_into_it(op, const_first, shape):
    k = RNG.uniform(0.5, 1.5, shape)
    ins = ["k", "c"] if const_first else ["c", "k"]
    nodes = [conv("x", "c", "conv", pads=[1, 1, 1, 1]), helper.make_node(op, ins, ["y"], name="affine")]
    m = make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], {"w": RNG.standard_normal((4, 2, 3, 3)), "k": k})
    g = pipeline(m)
    assert g.ops() == ["Conv"] and g.nodes[0].sources == ["conv", "affine"] and g.nodes[0].outputs == ["y"]
    same_numbers(m, g, (1, 2, 4, 4))


@pytest.mark.parametrize("after", ["bn", "affine"])
def test_after_a_gemm_the_constant_or_batchnorm_folds_into_the_fc(after):
    c = 6
    tail = ([helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"], name="bn")] if after == "bn"
            else [helper.make_node("Mul", ["h", "s"], ["hs"], name="mul"),
                  helper.make_node("Add", ["hs", "t"], ["y"], name="add")])
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "B"], ["h"], name="fc")] + tail
    inits = {"B": RNG.standard_normal((2 * 3 * 3, c)), "g": RNG.uniform(0.5, 1.5, c), "b": RNG.standard_normal(c),
             "m": RNG.standard_normal(c), "v": RNG.uniform(0.5, 2, c), "s": RNG.uniform(0.5, 1.5, c),
             "t": RNG.standard_normal((1, c))}
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], inits)
    g = pipeline(m)
    assert g.ops() == ["Conv"] and g.shapes["y"] == (1, c, 1, 1)
    same_numbers(m, g, (1, 2, 3, 3))


def test_a_constant_varying_over_the_map_is_not_a_bias():
    nodes = [conv("x", "c", "conv"), helper.make_node("Add", ["c", "k"], ["y"], name="addk")]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": RNG.standard_normal((2, 2, 1, 1)),
                                                        "k": RNG.standard_normal((1, 1, 3, 3))})
    with pytest.raises(UnsupportedOpError, match="'addk'.*not one scale and one shift per channel"):
        pipeline(m)


# -- folds into the next conv; input normalization ------------------------------------------------------------

def normalized(pads, mean=(0.4, -0.3), std=(0.5, 2.0)):
    nodes = [helper.make_node("Sub", ["x", "mean"], ["xs"], name="sub"),
             helper.make_node("Div", ["xs", "std"], ["xn"], name="div"),
             conv("xn", "y", "conv", pads=pads)]
    inits = {"mean": np.array(mean).reshape(1, 2, 1, 1), "std": np.array(std).reshape(2, 1, 1),
             "w": RNG.standard_normal((3, 2, 3, 3))}
    return make_model(nodes, [("x", [1, 2, 5, 5])], ["y"], inits)


def test_input_normalization_folds_into_an_unpadded_conv():
    m = normalized([0, 0, 0, 0])
    g = pipeline(m)
    assert g.ops() == ["Conv"] and g.nodes[0].inputs[0] == "x" and g.nodes[0].sources == ["conv", "div", "sub"]
    assert len(g.nodes[0].attr("sps_input_shift")) == 2
    same_numbers(m, g, (1, 2, 5, 5))


def test_before_a_padded_conv_only_the_scale_folds_and_the_shift_is_a_1x1_conv():
    m = normalized([1, 1, 1, 1])
    g = pipeline(m)
    assert g.ops() == ["Conv", "Conv"] and g.nodes[0].name == "sub" and g.nodes[0].attr("sps_helper")
    assert g.initializers[g.nodes[0].inputs[1]].shape == (2, 2, 1, 1) and "div" in g.nodes[1].sources
    same_numbers(m, g, (1, 2, 5, 5))
    g = pipeline(normalized([1, 1, 1, 1], mean=(0.0, 0.0)))      # zero mean: a scale only, exact with padding
    assert g.ops() == ["Conv"]


def test_shift_before_a_pps_conv_goes_into_the_bias_with_the_projected_weights():
    # the bias term sum W[o, i] * s[i] must use the weights after PPS zeroed taps, as the float model does
    m = normalized([0, 0, 0, 0])
    x = x_of((24, 2, 5, 5))
    program = compile_model(m, pps=(4, 4), calib=x)
    floats = project_onnx(m, pps=(4, 4))
    for k in range(3):
        want = ort_run(floats, x[k:k + 1])[0].ravel()
        got = run_reference(program, x[k])[0].ravel()
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max() + 3 * program.outputs[0].scale


def test_pps_weights_computed_by_a_constant_subgraph_are_written_back_by_project_onnx():
    w = RNG.standard_normal((4, 2, 3, 3))
    nodes = [helper.make_node("Reshape", ["w_flat", "shape"], ["w"]), conv("x", "y", "conv", pads=[1, 1, 1, 1])]
    m = make_model(nodes, [("x", [1, 2, 5, 5])], ["y"], {"w_flat": w.ravel(), "shape": np.array(w.shape, np.int64)})
    floats = project_onnx(m, pps=(2, 4))
    masked = {t.name: onnx.numpy_helper.to_array(t) for t in floats.graph.initializer}["w__sps_folded"]
    assert np.count_nonzero(masked.reshape(8, 9), axis=1).max() == 4


# -- layers of their own ---------------------------------------------------------------------------------------

def test_batchnorm_after_a_pool_is_a_1x1_conv():
    c = 3
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2]),
             helper.make_node("BatchNormalization", ["p", "g", "b", "m", "v"], ["y"], name="bn")]
    inits = {"g": RNG.uniform(0.5, 1.5, c), "b": RNG.standard_normal(c), "m": RNG.standard_normal(c),
             "v": RNG.uniform(0.5, 2, c)}
    m = make_model(nodes, [("x", [1, c, 4, 4])], ["y"], inits)
    g = pipeline(m)
    assert g.ops() == ["MaxPool", "Conv"] and g.nodes[1].attr("sps_helper")
    same_numbers(m, g, (1, c, 4, 4))


def test_relu_on_the_input_is_a_1x1_maxpool_and_a_graph_of_reshapes_gets_a_copy_layer():
    m = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [("x", [1, 2, 3, 3])], ["y"], {})
    g = pipeline(m)
    assert g.ops() == ["MaxPool"] and g.nodes[0].attr("sps_relu") and g.nodes[0].attr("kernel_shape") == [1, 1]
    same_numbers(m, g, (1, 2, 3, 3))
    m = make_model([helper.make_node("Flatten", ["x"], ["y"], name="flat")], [("x", [1, 2, 3, 3])], ["y"], {})
    g = pipeline(m)
    assert g.ops() == ["MaxPool"] and g.outputs == ["y"] and g.nodes[0].inputs == ["x"]
    xs = x_of((3, 2, 3, 3))
    _, [(got, want, scale)] = sim_against_onnxruntime(m, xs, pps=None)
    assert np.abs(got - want).max() <= scale / 2 + 1e-6          # one rounding of the input, nothing else


def test_relu6_is_a_clip_of_the_int8_range_and_after_a_maxpool_gets_an_identity_conv():
    nodes = [conv("x", "c", "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["r"], name="relu6"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Clip", ["p", "lo", "hi2"], ["y"], name="clip2")]
    inits = {"w": RNG.standard_normal((3, 2, 3, 3)) / 3, "lo": np.array(0, np.float32),
             "hi": np.array(6, np.float32), "hi2": np.array(4, np.float32)}
    m = make_model(nodes, [("x", [1, 2, 6, 6])], ["y"], inits)
    g = pipeline(m)
    assert g.ops() == ["Conv", "MaxPool", "Conv"]
    assert g.nodes[0].attr("sps_clip_max") == 6 and g.nodes[2].attr("sps_clip_max") == 4
    same_numbers(m, g, (1, 2, 6, 6))
    xs = x_of((4, 2, 6, 6)) * 4
    program, [(got, want, scale)] = sim_against_onnxruntime(m, xs, pps=None)
    assert program.metadata["layers"][0]["op"] == "CONV" and scale == pytest.approx(4 / 127)
    assert want.max() == 4 and got.max() <= 4 + 1e-6 and np.abs(got - want).max() <= 0.08 * 4 + 3 * scale


@pytest.mark.parametrize("lo,hi", [(-1.0, 6.0), (0.5, 6.0)])
def test_clips_the_requantizer_cannot_express_are_refused_by_name(lo, hi):
    nodes = [conv("x", "c", "conv"), helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip")]
    inits = {"w": np.ones((2, 2, 1, 1)), "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
    with pytest.raises(UnsupportedOpError, match=rf"'clip' \(Clip\): Clip\(min={lo:g}, max=6\) is not exactly"):
        pipeline(make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], inits))


def test_leaky_relu_is_refused_by_name():
    nodes = [conv("x", "c", "conv"), helper.make_node("LeakyRelu", ["c"], ["y"], name="lrelu", alpha=0.2)]
    with pytest.raises(UnsupportedOpError, match=r"'lrelu' \(LeakyRelu\): LeakyRelu\(alpha=0.2\) is not exactly"):
        pipeline(make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": np.ones((2, 2, 1, 1))}))


# -- transposes, 1-D maps, flat inputs ------------------------------------------------------------------------

def test_transpose_before_flatten_and_gemm_goes_into_the_weights():
    nodes = [conv("x", "c", "conv"), helper.make_node("Transpose", ["c"], ["t"], name="nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["t"], ["f"]), helper.make_node("Gemm", ["f", "B"], ["y"], name="fc",
                                                                         transB=1)]
    m = make_model(nodes, [("x", [1, 2, 3, 4])], ["y"], {"w": RNG.standard_normal((5, 2, 1, 1)),
                                                        "B": RNG.standard_normal((7, 5 * 3 * 4))})
    g = pipeline(m)
    assert g.ops() == ["Conv", "Conv"] and "nhwc" in g.nodes[1].sources
    same_numbers(m, g, (1, 2, 3, 4))


def test_nhwc_input_transpose_is_a_one_hot_conv():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
             conv("t", "y", "conv", pads=[1, 1, 1, 1])]
    m = make_model(nodes, [("x", [1, 4, 5, 3])], ["y"], {"w": RNG.standard_normal((2, 3, 3, 3))})
    g = pipeline(m)
    assert g.ops() == ["Conv", "Conv"] and g.nodes[0].attr("sps_out_view") == [12, 5, 1]
    same_numbers(m, g, (1, 4, 5, 3))
    layers = lower.to_layers(g)
    assert layers[0].in_shape == (4, 5, 3) and layers[0].out_shape == (12, 5, 1) and layers[0].kernel == (1, 3)


def test_1d_conv_and_pools_run_as_2d_maps_of_one_row():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1d", pads=[1, 1], kernel_shape=[3]),
             helper.make_node("Mul", ["c", "s"], ["m"], name="scale"),
             helper.make_node("Relu", ["m"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["y"], name="pool1d", kernel_shape=[2], strides=[2], ceil_mode=1)]
    inits = {"w": RNG.standard_normal((4, 2, 3)), "b": RNG.standard_normal(4), "s": RNG.uniform(0.5, 2, (4, 1))}
    m = make_model(nodes, [("x", [1, 2, 9])], ["y"], inits)
    g = pipeline(m)
    assert g.ops() == ["Conv", "MaxPool"] and g.shapes["x"] == (1, 2, 1, 9) and g.shapes["y"] == (1, 4, 1, 5)
    same_numbers(m, g, (1, 2, 9))


def test_gemm_on_a_flat_graph_input_is_a_1x1_conv_and_transa_is_refused():
    m = make_model([helper.make_node("Gemm", ["x", "B", "C"], ["y"], name="fc", alpha=0.5)], [("x", [1, 6])],
                   ["y"], {"B": RNG.standard_normal((6, 3)), "C": RNG.standard_normal(3)})
    g = pipeline(m)
    assert g.ops() == ["Conv"] and g.shapes["x"] == (1, 6, 1, 1)
    same_numbers(m, g, (1, 6))
    m.graph.node[0].attribute.append(helper.make_attribute("transA", 1))
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 6
    with pytest.raises(OnnxImportError, match="transA"):
        pipeline(m)


# -- pools -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),     # 6x6: the ceil adds nothing
    ("AveragePool", dict(kernel_shape=[3, 3], auto_pad="VALID")),
])
def test_pool_attributes_run_on_sim(op, attrs):
    m = make_model([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], [("x", [1, 3, 6, 6])], ["y"], {})
    _, [(got, want, scale)] = sim_against_onnxruntime(m, x_of((4, 3, 6, 6)), pps=None)
    assert np.abs(got - want).max() <= 3 * scale        # input rounding (in output LSB) + output rounding


# -- host steps, the guard's list ------------------------------------------------------------------------------

def test_log_softmax_tail_is_a_host_step_when_the_model_file_can_hold_it(monkeypatch):
    from sps_pynq import model_file
    from sps_pynq.runtime.session import Session
    nodes = [conv("x", "c", "conv"), helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("LogSoftmax", ["f"], ["y"], name="lsm", axis=1)]
    m = make_model(nodes, [("x", [1, 2, 1, 1])], ["y"], {"w": RNG.standard_normal((5, 2, 1, 1))})
    if "log_softmax" not in model_file._HOST_OPS:
        with pytest.raises(UnsupportedOpError, match="'lsm'.*host step 'log_softmax'.*cannot hold"):
            pipeline(m)
        monkeypatch.setattr(model_file, "_HOST_OPS", model_file._HOST_OPS + ("log_softmax",))
    xs = x_of((6, 2, 1, 1))
    program = compile_model(m, calib=xs, pps=None)
    assert program.host_steps == [{"op": "log_softmax", "tensor": "y", "axis": 1, "source": "lsm"}]
    with Session(program, backend="sim") as s:
        got = s.run(xs)
    want = np.concatenate([ort_run(m, x[None])[0] for x in xs])
    assert np.abs(got.reshape(want.shape) - want).max() < 0.1


def test_blockers_lists_every_node_with_reason_and_fix():
    nodes = [conv("x", "c", "conv", group=2), helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
             helper.make_node("Mul", ["s", "c"], ["y"], name="gate")]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": np.ones((2, 1, 1, 1))})
    g = passes.run_pipeline(ir.import_onnx(m), guard=False)
    found = passes.blockers(g)
    assert [b.node.name for b in found] == ["conv", "sig", "gate"]
    assert "group=2" in found[0].reason and "Sigmoid" in found[1].reason and "two activations" in found[2].reason
    assert all(b.fix for b in found)
    with pytest.raises(UnsupportedOpError, match=r"'conv'.*; 2 more node\(s\) block this model: `sps-pynq pack "
                                                 r"--explain"):
        passes.check_supported(g)


def test_dilated_conv_matches_onnxruntime():
    nodes = [conv("x", "y", "conv", pads=[2, 2, 2, 2], dilations=[2, 2], strides=[1, 2])]
    m = make_model(nodes, [("x", [1, 2, 7, 7])], ["y"], {"w": RNG.standard_normal((3, 2, 3, 3))})
    g = pipeline(m)
    assert g.ops() == ["Conv"] and g.nodes[0].attr("kernel_shape") == [5, 5]
    same_numbers(m, g, (1, 2, 7, 7))
    _, [(got, want, scale)] = sim_against_onnxruntime(m, x_of((3, 2, 7, 7)), pps=None)
    assert np.abs(got - want).max() <= 0.08 * np.abs(want).max() + 3 * scale


def test_training_dropout_a_used_mask_and_a_softmax_over_the_batch_are_refused():
    for inputs, outputs, inits, fragment in (
            (["c", "ratio", "train"], ["y"], {"ratio": np.array(0.5, np.float32), "train": np.array(True)},
             "'drop'.*training mode"),
            (["c"], ["y", "mask"], {}, "'drop'.*mask output is used")):
        nodes = [conv("x", "c", "conv"), helper.make_node("Dropout", inputs, outputs, name="drop")]
        m = make_model(nodes, [("x", [1, 2, 3, 3])], outputs, {"w": np.ones((2, 2, 1, 1)), **inits})
        with pytest.raises(UnsupportedOpError, match=fragment):
            pipeline(m)
    nodes = [conv("x", "c", "conv"), helper.make_node("Softmax", ["c"], ["y"], name="sm", axis=0)]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": np.ones((2, 2, 1, 1))})
    with pytest.raises(UnsupportedOpError, match="'sm'.*over axis 0, the batch axis"):
        pipeline(m)
