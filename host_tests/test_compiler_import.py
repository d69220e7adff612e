"""ONNX import and the guard that only supported ops remain: each rejection path with its message."""
import numpy as np
import onnx
import pytest
from onnx import helper

from sps_pynq.compiler import compile_model, ir, passes
from sps_pynq.compiler.testing import make_model
from sps_pynq.errors import OnnxImportError, UnsupportedOpError

RNG = np.random.default_rng(0)


def conv_model(op_after=None, **conv_attrs):
    w = RNG.standard_normal((4, 2, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", pads=[1, 1, 1, 1], **conv_attrs)]
    out = "y"
    if op_after:
        nodes.append(helper.make_node(op_after, ["y"], ["z"], name="after"))
        out = "z"
    return make_model(nodes, [("x", [1, 2, 6, 6])], [out], {"w": w})


def lower(model):
    return passes.run_pipeline(ir.import_onnx(model))


def lower_layers(model):
    from sps_pynq.compiler import lower as lower_mod
    return lower_mod.to_layers(lower(model))


def test_import_keeps_names_shapes_and_float64_initializers():
    g = ir.import_onnx(conv_model())
    assert [n.op for n in g.nodes] == ["Conv"] and g.nodes[0].name == "conv1"
    assert g.shapes["x"] == (1, 2, 6, 6) and g.shapes["y"] == (1, 4, 6, 6)
    assert g.initializers["w"].dtype == np.float64 and g.inputs == ["x"] and g.outputs == ["y"]


def test_dynamic_batch_is_fixed_to_one():
    m = conv_model()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    g = ir.import_onnx(m)
    assert g.shapes["x"] == (1, 2, 6, 6) and g.onnx_shapes["x"][0] == "N"


def test_constant_nodes_become_initializers():
    w = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["w"], value=onnx.numpy_helper.from_array(w, "w")),
             helper.make_node("Conv", ["x", "w"], ["y"], name="c")]
    g = ir.import_onnx(make_model(nodes, [("x", [1, 2, 5, 5])], ["y"], {}))
    assert g.ops() == ["Conv"] and np.array_equal(g.initializers["w"], w)


def test_broken_file_names_the_file(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf" * 3)
    with pytest.raises(OnnxImportError, match="broken.onnx"):
        ir.import_onnx(str(path))
    with pytest.raises(OnnxImportError, match="no such ONNX file"):
        ir.import_onnx(str(tmp_path / "missing.onnx"))


def test_truncated_file_names_the_file(tmp_path):
    good = conv_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(OnnxImportError, match="cut.onnx"):
        compile_model(str(path))


def test_old_opset_is_converted_and_an_unknown_one_refused():
    m = conv_model()
    m.opset_import[0].version = 9
    g = ir.import_onnx(m)
    assert g.opset == ir.MIN_OPSET and g.ops() == ["Conv"]
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    with pytest.raises(OnnxImportError, match=f"opset {onnx.defs.onnx_opset_version() + 1} is unknown"):
        ir.import_onnx(m)


def test_unsupported_op_names_node_op_and_supported_list():
    with pytest.raises(UnsupportedOpError) as e:
        lower(conv_model("Sigmoid"))
    msg = str(e.value)
    assert "'after'" in msg and "(Sigmoid)" in msg and "supported:" in msg and "Conv" in msg and "MaxPool" in msg


def test_grouped_conv_rejected():
    w = RNG.standard_normal((4, 1, 3, 3))
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=2)], [("x", [1, 2, 6, 6])],
                   ["y"], {"w": w})
    with pytest.raises(UnsupportedOpError, match=r"'dw' \(Conv\).*grouped convolution \(group=2\)"):
        lower(m)


def test_dilated_conv_is_a_spread_kernel_and_a_dilated_pool_is_rejected():
    g = lower(conv_model(dilations=[2, 2]))
    w = g.initializers[g.nodes[0].inputs[1]]
    assert w.shape == (4, 2, 5, 5) and np.count_nonzero(w[:, :, 1::2, :]) == 0 and g.nodes[0].attr("dilations") == [1, 1]
    m = make_model([helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2], dilations=[2, 2])],
                   [("x", [1, 2, 6, 6])], ["y"], {})
    with pytest.raises(UnsupportedOpError, match=r"'mp'.*dilations=\[2, 2\]"):
        lower(m)


def test_ceil_mode_is_extra_padding_and_unequal_divisors_are_rejected():
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)]
    layers = lower_layers(make_model(nodes, [("x", [1, 2, 5, 5])], ["y"], {}))
    assert layers[0].out_shape == (2, 3, 3) and layers[0].pads == (0, 0, 1, 1)
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1)]
    with pytest.raises(UnsupportedOpError, match=r"'pool' \(AveragePool\).*divides its windows by different numbers "
                                                 r"\(1, 2, 4:"):
        lower(make_model(nodes, [("x", [1, 2, 5, 5])], ["y"], {}))


def test_avgpool_excluding_pad_rejected():
    m = make_model([helper.make_node("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[3, 3],
                                     pads=[1, 1, 1, 1])], [("x", [1, 2, 5, 5])], ["y"], {})
    with pytest.raises(UnsupportedOpError, match="count_include_pad=0"):
        lower(m)


def test_standalone_batchnorm_is_a_1x1_conv_and_one_with_variable_parameters_is_rejected():
    c = 2
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn")]
    inits = {"g": np.ones(c), "b": np.zeros(c), "m": np.zeros(c), "v": np.ones(c)}
    g = lower(make_model(nodes, [("x", [1, c, 4, 4])], ["y"], inits))
    assert g.ops() == ["Conv"] and g.initializers[g.nodes[0].inputs[1]].shape == (c, c, 1, 1)
    nodes = [helper.make_node("Relu", ["x"], ["g"], name="r"),
             helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn")]
    inits.pop("g")
    with pytest.raises(UnsupportedOpError, match="'bn'.*not a per-channel affine"):
        lower(make_model(nodes, [("x", [1, c, 4, 4])], ["y"], inits))


def test_add_of_a_constant_that_varies_over_the_map_rejected():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c"),
             helper.make_node("Add", ["y", "k"], ["z"], name="addk")]
    m = make_model(nodes, [("x", [1, 2, 4, 4])], ["z"], {"w": RNG.standard_normal((2, 2, 1, 1)),
                                                        "k": RNG.standard_normal((1, 2, 4, 4))})
    with pytest.raises(UnsupportedOpError, match=r"'addk'.*constant\(s\) \[\[1, 2, 4, 4\]\].*not one scale and one "
                                                 r"shift per channel"):
        lower(m)


def test_custom_domain_rejected():
    nodes = [helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.example")]
    m = make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], {})
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError, match="'foo'.*com.example"):
        lower(m)


def test_non_float_input_rejected():
    m = conv_model()
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    with pytest.raises(OnnxImportError, match="UINT8"):
        ir.import_onnx(m)
