"""Each graph pass on a tiny onnx.helper graph: the structure it leaves and the numbers (onnxruntime on the
original model against onnxruntime on the rewritten graph)."""
import numpy as np
import pytest
from onnx import helper

from sps_pynq.compiler import ir, lower, passes
from sps_pynq.compiler.testing import make_model, ort_run

RNG = np.random.default_rng(1)


def x_of(shape):
    return RNG.standard_normal(shape).astype(np.float32)


def same_numbers(model, g, shape, atol=1e-4):
    x = x_of(shape)
    want = ort_run(model, x)
    got = ort_run(ir.export_onnx(g), x)
    assert len(want) == len(got)
    for a, b in zip(want, got):
        np.testing.assert_allclose(np.ravel(b), np.ravel(a), rtol=1e-4, atol=atol)


def run(model, *pass_list):
    g = ir.import_onnx(model)
    for p in pass_list:
        g, _ = p.run(g)
    return g


def bn_inits(c, prefix="bn"):
    return {f"{prefix}_g": RNG.uniform(0.5, 1.5, c), f"{prefix}_b": RNG.standard_normal(c),
            f"{prefix}_m": RNG.standard_normal(c), f"{prefix}_v": RNG.uniform(0.5, 2, c)}


def bn_node(x, y, prefix="bn", eps=1e-3):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "gbmv"], [y], name=prefix,
                            epsilon=eps)


@pytest.mark.parametrize("with_bias", [False, True])
def test_fold_batchnorm_structure_and_numbers(with_bias):
    inits = {"w": RNG.standard_normal((6, 3, 3, 3)), **bn_inits(6)}
    conv_in = ["x", "w"]
    if with_bias:
        inits["cb"] = RNG.standard_normal(6)
        conv_in.append("cb")
    nodes = [helper.make_node("Conv", conv_in, ["c"], name="conv", pads=[1, 1, 1, 1]), bn_node("c", "y")]
    m = make_model(nodes, [("x", [1, 3, 5, 5])], ["y"], inits)
    g, changed = passes.FoldBatchNorm().run(ir.import_onnx(m))
    assert changed and g.ops() == ["Conv"] and g.nodes[0].sources == ["conv", "bn"] and g.outputs == ["y"]
    assert g.nodes[0].outputs == ["y"] and len(g.nodes[0].inputs) == 3
    same_numbers(m, g, (1, 3, 5, 5))


def test_fold_batchnorm_keeps_zeros():
    w = RNG.standard_normal((4, 2, 3, 3))
    w[:, :, 0, :] = 0
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), bn_node("c", "y")]
    g = run(make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], {"w": w, **bn_inits(4)}), passes.FoldBatchNorm())
    folded = g.initializers[g.nodes[0].inputs[1]]
    assert np.all(folded[:, :, 0, :] == 0) and np.all(folded[:, :, 1:, :] != 0)


def test_batchnorm_not_folded_when_conv_output_is_shared():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), bn_node("c", "y"),
             helper.make_node("Add", ["c", "y"], ["z"], name="add")]
    m = make_model(nodes, [("x", [1, 2, 4, 4])], ["z"], {"w": RNG.standard_normal((2, 2, 1, 1)), **bn_inits(2)})
    g, changed = passes.FoldBatchNorm().run(ir.import_onnx(m))
    assert not changed and "BatchNormalization" in g.ops()


@pytest.mark.parametrize("producer", ["Conv", "Add", "MaxPool"])
def test_fuse_relu(producer):
    inits = {"w": RNG.standard_normal((2, 2, 1, 1))}
    if producer == "Conv":
        nodes = [helper.make_node("Conv", ["x", "w"], ["p"], name="p")]
    elif producer == "Add":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
                 helper.make_node("Add", ["x", "c"], ["p"], name="p")]
    else:
        nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="p", kernel_shape=[2, 2], strides=[2, 2])]
    nodes.append(helper.make_node("Relu", ["p"], ["y"], name="relu"))
    m = make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], inits)
    g, changed = passes.FuseRelu().run(ir.import_onnx(m))
    assert changed and "Relu" not in g.ops()
    fused = [n for n in g.nodes if n.name == "p"][0]
    assert fused.attr("sps_relu") and fused.outputs == ["y"] and fused.sources[-1] == "relu"
    same_numbers(m, g, (1, 2, 4, 4))


def test_relu_not_fused_when_preactivation_is_used_elsewhere():
    nodes = [helper.make_node("Conv", ["x", "w"], ["p"], name="p"), helper.make_node("Relu", ["p"], ["r"]),
             helper.make_node("Add", ["p", "r"], ["y"], name="add")]
    m = make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], {"w": RNG.standard_normal((2, 2, 1, 1))})
    g, changed = passes.FuseRelu().run(ir.import_onnx(m))
    assert not changed and "Relu" in g.ops()


@pytest.mark.parametrize("trans_b,alpha,beta", [(1, 1.0, 1.0), (0, 0.5, 2.0)])
def test_flatten_gemm_becomes_conv_over_the_whole_map(trans_b, alpha, beta):
    c, h, w, n = 3, 4, 5, 7
    b = RNG.standard_normal((n, c * h * w) if trans_b else (c * h * w, n))
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "B", "C"], ["y"], name="fc", transB=trans_b, alpha=alpha, beta=beta)]
    m = make_model(nodes, [("x", [1, c, h, w])], ["y"], {"B": b, "C": RNG.standard_normal(n)})
    g = passes.run_pipeline(ir.import_onnx(m))
    assert g.ops() == ["Conv"] and g.nodes[0].inputs[0] == "x" and g.nodes[0].attr("sps_fc")
    assert g.nodes[0].sources == ["flat", "fc"]
    assert g.initializers[g.nodes[0].inputs[1]].shape == (n, c, h, w)
    assert g.nodes[0].attr("kernel_shape") == [h, w] and g.shapes["y"] == (1, n, 1, 1)
    same_numbers(m, g, (1, c, h, w))


def test_matmul_add_becomes_gemm_then_conv():
    c, n = 6, 4
    nodes = [helper.make_node("Conv", ["x", "w"], ["cv"], name="conv"),
             helper.make_node("Flatten", ["cv"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "B"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "bias"], ["y"], name="addb")]
    m = make_model(nodes, [("x", [1, 2, 2, 2])], ["y"], {"w": RNG.standard_normal((c, 2, 2, 2)),
                                                         "B": RNG.standard_normal((c, n)),
                                                         "bias": RNG.standard_normal(n)})
    g = passes.run_pipeline(ir.import_onnx(m))
    assert g.ops() == ["Conv", "Conv"] and g.nodes[1].sources == ["flat", "mm", "addb"]
    same_numbers(m, g, (1, 2, 2, 2))


def test_fc_over_a_large_map_becomes_a_1x1_conv_over_the_flat_map():
    c, h, w, n = 2, 16, 16, 3        # 256 positions: more than the descriptor's 8-bit kh/kw/nnz fields hold
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "B", "C"], ["y"], name="fc", transB=1)]
    m = make_model(nodes, [("x", [1, c, h, w])], ["y"], {"B": RNG.standard_normal((n, c * h * w)),
                                                         "C": RNG.standard_normal(n)})
    g = passes.run_pipeline(ir.import_onnx(m))
    fc = g.nodes[0]
    assert g.ops() == ["Conv"] and fc.inputs[0] == "x" and g.shapes["x"] == (1, c, h, w)
    assert fc.attr("sps_flat_input") and fc.attr("kernel_shape") == [1, 1] and fc.attr("pads") == [0, 0, 0, 0]
    w_flat = g.initializers[fc.inputs[1]]
    assert w_flat.shape == (n, c * h * w, 1, 1)
    x = x_of((1, c, h, w))
    got = w_flat.reshape(n, -1) @ x.reshape(-1) + g.initializers[fc.inputs[2]]    # the 1x1 conv on the flat map
    np.testing.assert_allclose(got, ort_run(m, x)[0].ravel(), rtol=1e-4, atol=1e-4)
    same_numbers(m, g, (1, c, h, w))                  # export_onnx gives onnxruntime the whole-map Conv
    layer = lower.to_layers(g)[0]
    assert (layer.in_shape, layer.kernel, layer.out_shape) == ((c * h * w, 1, 1), (1, 1), (n, 1, 1))


@pytest.mark.parametrize("hw_shape,attrs,changed", [((16, 16), {}, True), ((15, 17), {}, False),
                                                    ((16, 16), {"auto_pad": "SAME_UPPER"}, False),
                                                    ((16, 16), {"pads": [1, 0, 0, 0]}, False)])
def test_fc_as_pointwise_only_for_a_plain_product_over_a_map_too_large_for_the_fields(hw_shape, attrs, changed):
    h, w = hw_shape
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)], [("x", [1, 1, h, w])],
                   ["y"], {"w": RNG.standard_normal((2, 1, h, w))})
    g, did = passes.FcAsPointwise().run(ir.import_onnx(m))
    assert did == changed and bool(g.nodes[0].attr("sps_flat_input")) == changed
    assert passes.FcAsPointwise().run(g)[1] is False        # done once
    same_numbers(m, g, (1, 1, h, w))


def test_shape_computed_reshape_flatten_is_removed_with_its_shape_chain():
    # the old torch exporter's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape
    c, h, w, n = 2, 3, 3, 5
    nodes = [helper.make_node("Conv", ["x", "w"], ["cv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["cv"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n0"], axis=0),
             helper.make_node("Unsqueeze", ["n0", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["cv", "shape"], ["f"], name="view"),
             helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1)]
    inits = {"w": RNG.standard_normal((c, c, 3, 3)), "zero": np.array(0, dtype=np.int64),
             "axes": np.array([0], dtype=np.int64), "minus1": np.array([-1], dtype=np.int64),
             "B": RNG.standard_normal((n, c * h * w))}
    m = make_model(nodes, [("x", [1, c, h, w])], ["y"], inits)
    g = passes.run_pipeline(ir.import_onnx(m))
    assert g.ops() == ["Conv", "Conv"]
    same_numbers(m, g, (1, c, h, w))


@pytest.mark.parametrize("opset", [17, 18])
def test_reducemean_and_globalaveragepool(opset):
    if opset >= 18:
        nodes = [helper.make_node("ReduceMean", ["x", "ax"], ["y"], name="mean", keepdims=1)]
        inits = {"ax": np.array([2, 3], dtype=np.int64)}
    else:
        nodes = [helper.make_node("ReduceMean", ["x"], ["y"], name="mean", axes=[2, 3], keepdims=1)]
        inits = {}
    m = make_model(nodes, [("x", [1, 3, 4, 4])], ["y"], inits, opset=opset)
    g, changed = passes.ReduceMeanToGlobalPool().run(ir.import_onnx(m))
    assert changed and g.ops() == ["GlobalAveragePool"]
    same_numbers(m, g, (1, 3, 4, 4))


def test_identity_and_dropout_removed_output_name_kept():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Dropout", ["c"], ["d"], name="drop"),
             helper.make_node("Identity", ["d"], ["y"], name="id")]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": RNG.standard_normal((2, 2, 1, 1))})
    g, changed = passes.RemoveIdentity().run(ir.import_onnx(m))
    assert changed and g.ops() == ["Conv"] and g.nodes[0].outputs == ["y"] and g.outputs == ["y"]
    same_numbers(m, g, (1, 2, 3, 3))


def test_final_softmax_becomes_a_host_step():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Flatten", ["c"], ["f"], name="flat"),
             helper.make_node("Softmax", ["f"], ["y"], name="sm", axis=1)]
    m = make_model(nodes, [("x", [1, 3, 1, 1])], ["y"], {"w": RNG.standard_normal((5, 3, 1, 1))})
    g = passes.run_pipeline(ir.import_onnx(m))
    assert g.ops() == ["Conv"] and g.outputs == ["y"] and g.nodes[0].outputs == ["y"]
    assert g.host_steps == [{"op": "softmax", "tensor": "y", "axis": 1, "source": "sm"}]


def test_softmax_in_the_middle_is_rejected():
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="sm", axis=1),
             helper.make_node("Conv", ["s", "w"], ["y"], name="conv")]
    m = make_model(nodes, [("x", [1, 3, 2, 2])], ["y"], {"w": RNG.standard_normal((2, 3, 1, 1))})
    with pytest.raises(passes.UnsupportedOpError, match="'sm'.*only supported as the last op"):
        passes.run_pipeline(ir.import_onnx(m))


def test_dead_code_elimination_drops_unused_nodes_and_initializers():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
             helper.make_node("Conv", ["x", "w2"], ["unused"], name="dead")]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": RNG.standard_normal((2, 2, 1, 1)),
                                                         "w2": RNG.standard_normal((2, 2, 1, 1))})
    g, changed = passes.DeadCodeElimination().run(ir.import_onnx(m))
    assert changed and [n.name for n in g.nodes] == ["conv"] and "w2" not in g.initializers


def test_pipeline_check_runs_after_every_changing_pass():
    # conv-bn-relu, residual add+relu, pool, flatten, gemm, softmax: every pass has something to do
    c = 4
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             bn_node("c1", "b1", "bn1"), helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             bn_node("c2", "b2", "bn2"),
             helper.make_node("Add", ["b2", "r1"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
             helper.make_node("Identity", ["r2"], ["i"], name="id"),
             helper.make_node("GlobalAveragePool", ["i"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "B", "C"], ["l"], name="fc", transB=1),
             helper.make_node("Softmax", ["l"], ["y"], name="sm", axis=1)]
    inits = {"w1": RNG.standard_normal((c, 3, 3, 3)), "w2": RNG.standard_normal((c, c, 3, 3)),
             **bn_inits(c, "bn1"), **bn_inits(c, "bn2"), "B": RNG.standard_normal((10, c)),
             "C": RNG.standard_normal(10)}
    m = make_model(nodes, [("x", [1, 3, 6, 6])], ["y"], inits)
    seen = []

    def check(g, name):
        seen.append(name)
        if name != "strip_softmax":     # after it the graph ends before the softmax
            same_numbers(m, g, (1, 3, 6, 6))
    g = passes.run_pipeline(ir.import_onnx(m), check=check)
    assert {"remove_identity", "fold_batchnorm", "fuse_relu", "gemm_to_conv", "strip_softmax"} <= set(seen)
    assert g.ops() == ["Conv", "Conv", "Add", "GlobalAveragePool", "Conv"]
    assert [bool(n.attr("sps_relu")) for n in g.nodes] == [True, False, True, False, False]


def test_pipeline_repeats_the_list_until_nothing_changes():
    # Conv -> Identity -> Relu: the Relu fuses only once the Identity is gone, which this list does after it
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Identity", ["c"], ["i"], name="id"),
             helper.make_node("Relu", ["i"], ["y"], name="relu")]
    m = make_model(nodes, [("x", [1, 2, 3, 3])], ["y"], {"w": RNG.standard_normal((2, 2, 1, 1))})
    seen = []

    def check(g, name):
        seen.append(name)
        same_numbers(m, g, (1, 2, 3, 3))
    g = passes.run_pipeline(ir.import_onnx(m), [passes.FuseRelu(), passes.RemoveIdentity()], check=check)
    assert seen == ["remove_identity", "fuse_relu"]
    assert g.ops() == ["Conv"] and g.nodes[0].attr("sps_relu") and g.nodes[0].outputs == ["y"]


def test_pipeline_that_does_not_converge_is_an_error_naming_the_pass():
    class Restless(passes.Pass):
        name = "restless"

        def apply(self, g):
            return True
    m = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [("x", [1, 2, 3, 3])], ["y"], {})
    with pytest.raises(RuntimeError, match=r"no fixpoint in 4 rounds.*still changed.*restless.*compiler bug"):
        passes.run_pipeline(ir.import_onnx(m), [passes.FuseRelu(), Restless()], max_rounds=4)
