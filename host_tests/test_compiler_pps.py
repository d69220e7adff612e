"""PPS lowering: projection of dense 3x3 convs, detection (and no re-projection) of pruned ones, dense layers,
first_layer_dense / dense options, and project_onnx (the float model the int8 program approximates)."""
import numpy as np
import pytest
from onnx import helper, numpy_helper

from sps_pynq import pps
from sps_pynq.compiler import compile_model, import_and_lower, project_onnx
from sps_pynq.compiler.testing import make_model, ort_run
from sps_pynq.hw.descriptor import Op

pytestmark = pytest.mark.filterwarnings("ignore:no calibration data")
RNG = np.random.default_rng(4)


def net(w1=None, w2=None):
    """conv3x3(3->8)+BN+relu, conv3x3(8->8)+relu, conv1x1(8->4), flatten, gemm."""
    w1 = RNG.standard_normal((8, 3, 3, 3)) if w1 is None else w1
    w2 = RNG.standard_normal((8, 8, 3, 3)) if w2 is None else w2
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["n1"], name="bn1"),
             helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3"], ["c3"], name="conv3"),
             helper.make_node("Flatten", ["c3"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1)]
    inits = {"w1": w1, "w2": w2, "w3": RNG.standard_normal((4, 8, 1, 1)), "B": RNG.standard_normal((5, 64)),
             "g": RNG.uniform(0.5, 1.5, 8), "b": RNG.standard_normal(8), "m": RNG.standard_normal(8) * 0.1,
             "v": RNG.uniform(0.5, 2, 8)}
    return make_model(nodes, [("x", [1, 3, 4, 4])], ["y"], inits)


def modes(layers):
    return [(l.name, l.pps_how, l.P, l.K) for l in layers if l.op == Op.CONV]


def test_projection_of_3x3_and_dense_elsewhere():
    _, layers, _ = import_and_lower(net(), pps=(8, 4), fill_rows=False)
    assert modes(layers) == [("conv1", "projected", 8, 4), ("conv2", "projected", 8, 4), ("conv3", "dense", 1, 1),
                             ("fc", "dense", 1, 16)]
    for l in layers[:2]:
        assert np.all(l.weights[~pps.kernel_mask(l.weights.shape, l.masks)] == 0)
        assert 0 < l.energy_kept < 1


def test_first_layer_dense_and_all_dense():
    _, layers, _ = import_and_lower(net(), pps=(8, 4), first_layer_dense=True)
    assert [m[1] for m in modes(layers)] == ["dense", "projected", "dense", "dense"]
    _, layers, _ = import_and_lower(net(), pps=None)
    assert all(m[1] == "dense" for m in modes(layers))


def test_pruned_layer_is_detected_and_not_reprojected():
    # conv2 pruned to PPS(4, 2) with a table projection to (8, 4) would never choose
    table = [pps.mask_of(t) for t in ([0, 8], [2, 6], [1, 7], [3, 5])]
    w2 = RNG.standard_normal((8, 8, 3, 3)) * pps.kernel_mask((8, 8, 3, 3), table)
    _, layers, _ = import_and_lower(net(w2=w2), pps=(8, 4), fill_rows=False)
    conv2 = [l for l in layers if l.name == "conv2"][0]
    assert (conv2.pps_how, conv2.masks, conv2.energy_kept) == ("detected", table, 1.0)
    np.testing.assert_allclose(conv2.weights, w2.astype(np.float32), rtol=0, atol=0)
    program = compile_model(net(w2=w2), pps=(8, 4), fill_rows=False, num_calib=2)
    d = program.descriptors()[1]
    assert d.pps and (d.patterns, d.nnz) == (4, 2) and d.pattern_masks == table
    meta = [m for m in program.metadata["layers"] if m["name"] == "conv2"][0]
    assert (meta["mode"], meta["P"], meta["K"]) == ("detected", 4, 2)


def test_pps_descriptor_fields_and_metadata():
    program = compile_model(net(), pps="8x4", fill_rows=False, num_calib=2)
    d = program.descriptors()[0]
    assert d.pps and d.patterns == 8 and d.nnz == 4 and len(d.pattern_masks) == 8
    assert all(bin(m).count("1") == 4 for m in d.pattern_masks)
    assert program.metadata["pps"] == "8x4" and program.metadata["layers"][0]["energy_kept"] < 1
    sparse, dense = program.conv_macs()
    assert sparse < dense


def test_project_onnx_masks_the_original_weights_and_keeps_the_structure():
    m = net()
    proj = project_onnx(m, pps=(8, 4))
    assert [n.op_type for n in proj.graph.node] == [n.op_type for n in m.graph.node]
    inits = {t.name: numpy_helper.to_array(t) for t in proj.graph.initializer}
    orig = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    _, layers, _ = import_and_lower(m, pps=(8, 4), fill_rows=False)
    for name, layer in (("w1", layers[0]), ("w2", layers[1])):
        keep = pps.kernel_mask(orig[name].shape, layer.masks)
        np.testing.assert_array_equal(inits[name], orig[name] * keep)
    np.testing.assert_array_equal(inits["w3"], orig["w3"])
    # projected float model == the lowered float layers the compiler quantizes (same numbers through ORT)
    from sps_pynq.compiler import _with_layer_weights, ir
    g, layers, _ = import_and_lower(m, pps=(8, 4), fill_rows=False)
    x = RNG.standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ort_run(ir.export_onnx(_with_layer_weights(g, layers)), x)[0].ravel(),
                               ort_run(proj, x)[0].ravel(), rtol=1e-4, atol=1e-4)


def test_pps_spec_strings():
    _, layers, _ = import_and_lower(net(), pps="4x2", fill_rows=False)
    assert modes(layers)[1][2:] == (4, 2)
    with pytest.raises(pps.PpsSpecError):
        import_and_lower(net(), pps="4by2")
