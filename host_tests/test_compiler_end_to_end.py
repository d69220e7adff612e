"""Whole compiles of tiny graphs, one per supported op, executed on the numpy reference of the arithmetic
(sps_pynq.reference) and compared with onnxruntime on the float model (project_onnx: PPS-projected fp32)."""
import os
import zlib

import numpy as np
import pytest
from onnx import helper

from sps_pynq.compiler import compile_model, project_onnx
from sps_pynq.compiler.testing import cosine, make_model, ort_run, quantize_input, run_reference
from sps_pynq.errors import CompileError
from sps_pynq.hw.config import HwConfig
from sps_pynq.hw.descriptor import Op

pytestmark = pytest.mark.filterwarnings("ignore:no calibration data")
RNG = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def _rng_per_test(request):
    """Each test draws from its own generator, seeded by its name (and BASE): with one shared module generator a
    test's data depended on which tests pytest-xdist had run before it in the same worker."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(f"{BASE}:{request.node.name}".encode()))


def draw_inputs_and_calibration(shape, n_test, n_calib):
    """(test inputs, calibration set): the calibration set is n_calib fresh draws plus the test inputs themselves.
    Why: max-abs calibration gives every tensor the scale max|x| / 127 over the calibration set, and anything
    larger saturates at 127. With 16 random draws alone, a test input's pooled or convolved maximum beyond the
    calibrated one was clipped by up to ~30 LSB in ~5% of seeds (measured: the AveragePool output saturating at
    127 * s_y while onnxruntime's value was 2.6 against a calibrated 2.08); that is a property of the calibration
    data, not of the integer arithmetic. Calibrating on the test inputs as well leaves only rounding error, which
    is what the tolerances bound: input, weight and per-layer output rounding (1/2 LSB each, accumulated over a few
    layers) plus the PPS-projected weights' int8 rounding, within 8% of max |want| + 3 output LSB."""
    xs = RNG.standard_normal((n_test,) + shape).astype(np.float32)
    calib = RNG.standard_normal((n_calib,) + shape).astype(np.float32)
    return xs, np.concatenate([calib, xs])


# Any base seed should pass; SPS_E2E_SEED=<n> runs the file on other data (see the docstring above).
BASE = int(os.environ.get("SPS_E2E_SEED", "0"))


def compare(model, shape, pps=(4, 4), cos_min=0.995, **options):
    xs, calib = draw_inputs_and_calibration(shape, 3, 16)
    program = compile_model(model, pps=pps, calib=calib, **options)
    floats = project_onnx(model, pps=pps, **{k: v for k, v in options.items() if k == "first_layer_dense"})
    for x in xs:
        want = ort_run(floats, x[None])[0].ravel()
        got = run_reference(program, x)[0].ravel()
        assert cosine(got, want) >= cos_min, (got[:8], want[:8])
        assert np.max(np.abs(got - want)) <= 0.08 * np.max(np.abs(want)) + 3 * program.outputs[0].scale
    return program


def conv(x, y, w_name, name, **attrs):
    return helper.make_node("Conv", [x, w_name, w_name + "_b"], [y], name=name, **attrs)


def conv_inits(w_name, shape):
    return {w_name: RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:])), w_name + "_b": RNG.standard_normal(shape[0]) * 0.1}


@pytest.mark.parametrize("kernel,stride,pads", [(3, 1, [1, 1, 1, 1]), (3, 2, [0, 1, 1, 0]), (1, 1, [0, 0, 0, 0]),
                                                (5, 2, [2, 2, 2, 2]), (2, 2, [0, 0, 0, 0])])
def test_conv_geometries(kernel, stride, pads):
    shape = (3, 9, 8)
    m = make_model([conv("x", "c", "w", "conv", kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads),
                    helper.make_node("Relu", ["c"], ["y"])], [("x", (1,) + shape)], ["y"],
                   conv_inits("w", (8, 3, kernel, kernel)))
    program = compare(m, shape, fill_rows=False)        # the plain encoding: the descriptor holds the model's P, K
    d = program.descriptors()[0]
    assert (d.op, d.kh, d.stride_h, d.pad_top, d.pad_left, d.relu) == (Op.CONV, kernel, stride, pads[0], pads[1], True)
    assert d.pps == (kernel == 3) and (d.patterns, d.nnz) == ((4, 4) if kernel == 3 else (1, kernel * kernel))


def test_same_auto_pad():
    shape = (2, 7, 7)
    m = make_model([conv("x", "y", "w", "conv", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
                   [("x", (1,) + shape)], ["y"], conv_inits("w", (4, 2, 3, 3)))
    compare(m, shape)


@pytest.mark.parametrize("op,attrs", [("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
                                      ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
                                      ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
                                      ("AveragePool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                                                           count_include_pad=1)),
                                      ("GlobalAveragePool", {})])
def test_pools(op, attrs):
    shape = (3, 8, 8)
    m = make_model([conv("x", "c", "w", "conv", kernel_shape=[1, 1]), helper.make_node(op, ["c"], ["y"], **attrs)],
                   [("x", (1,) + shape)], ["y"], conv_inits("w", (6, 3, 1, 1)))
    program = compare(m, shape)
    d = program.descriptors()[1]
    assert d.op == (Op.MAXPOOL if op == "MaxPool" else Op.AVGPOOL)
    if op == "MaxPool":
        assert program.layers[1].out_scale == program.layers[0].out_scale


def test_residual_add():
    shape = (4, 6, 6)
    nodes = [conv("x", "a", "w1", "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             conv("ar", "b", "w2", "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "ar"], ["s"], name="add"), helper.make_node("Relu", ["s"], ["y"])]
    m = make_model(nodes, [("x", (1,) + shape)], ["y"], {**conv_inits("w1", (4, 4, 3, 3)),
                                                        **conv_inits("w2", (4, 4, 3, 3))})
    program = compare(m, shape)
    descs = program.descriptors()
    assert [d.op for d in descs] == [Op.CONV, Op.CONV, Op.ADD]
    # the residual (conv1's output) stays alive until the ADD: conv2 must not overwrite it
    assert descs[2].in2_offset == descs[0].out_offset or descs[2].in_offset == descs[0].out_offset
    assert descs[1].out_offset != descs[0].out_offset


def test_flatten_gemm_softmax():
    shape = (3, 4, 4)
    nodes = [conv("x", "c", "w", "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "B", "C"], ["l"], name="fc", transB=1),
             helper.make_node("Softmax", ["l"], ["y"], name="sm", axis=1)]
    m = make_model(nodes, [("x", (1,) + shape)], ["y"], {**conv_inits("w", (8, 3, 3, 3)),
                                                        "B": RNG.standard_normal((10, 128)) * 0.1,
                                                        "C": RNG.standard_normal(10)})
    (x,), calib = draw_inputs_and_calibration(shape, 1, 8)
    program = compile_model(m, pps=None, calib=calib)
    d = program.descriptors()[1]
    assert (d.op, d.kh, d.kw, d.out_h, d.pps, d.nnz) == (Op.CONV, 4, 4, 1, False, 16)
    assert program.host_steps[0]["op"] == "softmax" and program.outputs[0].shape == (10, 1, 1)
    logits = run_reference(program, x)[0].ravel()
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    want = ort_run(m, x[None])[0].ravel()
    assert np.max(np.abs(probs - want)) < 0.05


def test_fc_over_a_large_map_uses_the_flat_form():
    # kernel 16x16 = 256 taps does not fit the 8-bit nnz field: the FC runs as a 1x1 conv over C*H*W channels
    shape = (2, 16, 16)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "B"], ["y"], transB=1)]
    m = make_model(nodes, [("x", (1,) + shape)], ["y"], {"B": RNG.standard_normal((5, 512)) * 0.05})
    program = compare(m, shape)
    d = program.descriptors()[0]
    assert (d.in_c, d.in_h, d.in_w, d.kh, d.nnz) == (512, 1, 1, 1, 1)


@pytest.mark.parametrize("shape", [(120, 6, 6), (3, 40, 40)])     # a 36-tap kernel; the flat 1x1 form
def test_fc_wider_than_the_weight_buffer_runs_as_partial_sums(shape):
    """An FC whose row group is larger than the weight buffer (small: 8 KiB, R = 2: at most 4096 inputs) runs
    as partial FCs over slices of its input channels, each within half the buffer, summed by ADD layers that
    carry the bias and the ReLU; within the usual tolerance of onnxruntime."""
    n_in = int(np.prod(shape))
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "B", "C"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["y"])]
    m = make_model(nodes, [("x", (1,) + shape)], ["y"],
                   {"B": RNG.standard_normal((6, n_in)) / np.sqrt(n_in), "C": RNG.standard_normal(6) * 0.3})
    program = compare(m, shape, hw="small", pps=None)
    descs = program.descriptors()
    convs = [d for d in descs if d.op == Op.CONV]
    adds = [d for d in descs if d.op == Op.ADD]
    assert len(convs) == 3 and len(adds) == 2 and sum(d.in_c * d.nnz for d in convs) == n_in
    assert all(d.in_c * d.nnz * 2 <= 4096 for d in convs)            # each group fits half the weight buffer
    assert [d.relu for d in descs] == [False] * 4 + [True] and descs[-1].op == Op.ADD


def test_a_map_that_cannot_be_banded_is_a_compile_error():
    # one row of 3 channels x 50000 bytes is more than the whole 128 KiB activation buffer
    m = make_model([conv("x", "y", "w", "wide", kernel_shape=[1, 1])], [("x", (1, 3, 2, 50000))], ["y"],
                   conv_inits("w", (2, 3, 1, 1)))
    with pytest.raises(CompileError, match=r"layer wide: input \[3, 2, 50000\] .*even one output row needs 1 input "
                                           r"rows of 3 x 50000 bytes \(150032 bytes.*131072-byte activation buffer"):
        compile_model(m, num_calib=1)


LARGE = (6, 40, 36)            # 8640 bytes: more than half the `small` configuration's 16 KiB buffer; x2 below


@pytest.mark.parametrize("case", ["conv3x3", "conv3x3_s2", "conv7x7_s2", "conv1x1_s2", "maxpool3x3_s2", "gap",
                                  "add"])
def test_large_maps_run_in_bands(case):
    """A map larger than the activation buffer is cut into bands (rows; channels for pools); the program equals
    onnxruntime within the usual tolerance, and the C model equals the numpy reference bit for bit."""
    from sps_pynq.backends.ref import RefBackend
    from sps_pynq.backends.sim import SimBackend
    c, h, w = LARGE
    shape = (2 * c, h, w)            # 17280 bytes > 16384
    nodes = {
        "conv3x3": [conv("x", "y", "w", "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        "conv3x3_s2": [conv("x", "y", "w", "c", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        "conv7x7_s2": [conv("x", "y", "w", "c", kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3])],
        "conv1x1_s2": [conv("x", "y", "w", "c", kernel_shape=[1, 1], strides=[2, 2])],
        "maxpool3x3_s2": [helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[3, 3], strides=[2, 2],
                                           pads=[1, 1, 1, 1])],
        "gap": [helper.make_node("GlobalAveragePool", ["x"], ["y"], name="p")],
        "add": [conv("x", "a", "w", "c", kernel_shape=[1, 1]), helper.make_node("Add", ["a", "x"], ["y"], name="s")],
    }[case]
    k = {"conv3x3": 3, "conv3x3_s2": 3, "conv7x7_s2": 7}.get(case, 1)
    inits = conv_inits("w", (2 * c, 2 * c, k, k)) if case.startswith(("conv", "add")) else {}
    m = make_model(nodes, [("x", (1,) + shape)], ["y"], inits)
    program = compare(m, shape, hw="small", pps=None)
    bands = [layer["bands"] for layer in program.metadata["layers"]]
    assert max(bands) > 1 or case == "add", bands
    descs = program.descriptors()
    assert len(descs) == sum(bands) == program.num_layers
    x = quantize_input(RNG.standard_normal(shape), program.inputs[0].scale)
    outs = []
    for cls in (RefBackend, SimBackend):
        with cls() as be:
            be.load(program)
            be.write(program.inputs[0].offset, x)
            be.run()
            outs.append(be.read(program.outputs[0].offset, program.outputs[0].nbytes))
    assert np.array_equal(outs[0], outs[1])


def test_weight_buffer_overflow_is_a_compile_error():
    m = make_model([conv("x", "y", "w", "wide", kernel_shape=[3, 3])], [("x", (1, 300, 3, 3))], ["y"],
                   conv_inits("w", (4, 300, 3, 3)))
    with pytest.raises(CompileError, match=r"layer wide: one row group.*I=300 x K=9 x R=2\) is 5408 bytes.*4096"):
        compile_model(m, hw=HwConfig("tiny", rows=2, cols=2, weight_buf_bytes=4096), pps=None, num_calib=1)


def test_too_many_patterns_is_a_compile_error():
    m = make_model([conv("x", "y", "w", "c3", kernel_shape=[3, 3])], [("x", (1, 8, 4, 4))], ["y"],
                   conv_inits("w", (8, 8, 3, 3)))
    with pytest.raises(CompileError, match="layer c3: 8 patterns.*at most 4"):
        compile_model(m, hw=HwConfig("p4", rows=4, cols=4, max_patterns=4), pps=(8, 4), fill_rows=False, num_calib=1)


def test_calibration_data_synthetic_warning_and_shape_check():
    shape = (2, 4, 4)
    m = make_model([conv("x", "y", "w", "c", kernel_shape=[1, 1])], [("x", (1,) + shape)], ["y"],
                   conv_inits("w", (2, 2, 1, 1)))
    with pytest.warns(UserWarning, match="no calibration data.*synthetic"):
        p = compile_model(m, num_calib=4, seed=5)
    assert p.metadata["calibration"] == {"count": 4, "synthetic": True, "seed": 5, "method": "max-abs"}
    x = np.full((3,) + shape, 2.0, dtype=np.float32)
    p = compile_model(m, calib=x)
    assert p.metadata["calibration"]["synthetic"] is False and p.inputs[0].scale == pytest.approx(2.0 / 127)
    with pytest.raises(CompileError, match=r"calibration data has shape \[3, 4, 4\].*\[N, 2, 4, 4\]"):
        compile_model(m, calib=np.zeros((3, 4, 4), dtype=np.float32))


def test_compile_is_deterministic():
    shape = (3, 6, 6)
    m = make_model([conv("x", "y", "w", "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [("x", (1,) + shape)], ["y"],
                   conv_inits("w", (8, 3, 3, 3)))
    a, b = (compile_model(m, num_calib=4) for _ in range(2))
    assert a.image == b.image and a.inputs == b.inputs and a.outputs == b.outputs


def test_pool_padding_as_large_as_the_window_is_rejected():
    m = make_model([helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2], pads=[2, 2, 2, 2])],
                   [("x", (1, 2, 4, 4))], ["y"], {})
    with pytest.raises(CompileError, match=r"layer mp: pool padding \[2, 2, 2, 2\].*window 2x2"):
        compile_model(m, num_calib=1)


@pytest.mark.parametrize("opset", [11, 13, 18, 21])
def test_opsets_11_to_21(opset):
    shape = (3, 8, 8)
    c = 6
    if opset >= 13:
        squeeze = helper.make_node("Squeeze", ["g", "sq_axes"], ["s"], name="squeeze")
    else:
        squeeze = helper.make_node("Squeeze", ["g"], ["s"], name="squeeze", axes=[2, 3])
    nodes = [conv("x", "c", "w", "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "bg", "bb", "bm", "bv"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("Dropout", ["r"], ["d"], name="drop"),
             helper.make_node("MaxPool", ["d"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"), squeeze,
             helper.make_node("Gemm", ["s", "B", "C"], ["l"], name="fc", transB=1),
             helper.make_node("Softmax", ["l"], ["y"], name="sm", axis=1)]
    inits = {**conv_inits("w", (c, 3, 3, 3)), "bg": RNG.uniform(0.5, 1.5, c), "bb": RNG.standard_normal(c) * 0.1,
             "bm": RNG.standard_normal(c) * 0.1, "bv": RNG.uniform(0.5, 2, c), "B": RNG.standard_normal((4, c)),
             "C": RNG.standard_normal(4) * 0.1, "sq_axes": np.array([2, 3], dtype=np.int64)}
    if opset < 13:
        del inits["sq_axes"]
    m = make_model(nodes, [("x", (1,) + shape)], ["y"], inits, opset=opset)
    (x,), calib = draw_inputs_and_calibration(shape, 1, 8)
    program = compile_model(m, pps=(4, 4), calib=calib)
    assert [d.op for d in program.descriptors()] == [Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.CONV]
    assert program.host_steps[0]["op"] == "softmax"
    floats = project_onnx(m, pps=(4, 4))
    logits = run_reference(program, x)[0].ravel()
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    np.testing.assert_allclose(probs, ort_run(floats, x[None])[0].ravel(), atol=0.03)


def test_two_outputs_one_of_them_used_inside():
    shape = (3, 6, 6)
    nodes = [conv("x", "c1", "w1", "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["feat"], name="relu1"),
             conv("feat", "c2", "w2", "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c2"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    m = make_model(nodes, [("x", (1,) + shape)], ["feat", "y"], {**conv_inits("w1", (4, 3, 3, 3)),
                                                                **conv_inits("w2", (4, 4, 3, 3))})
    (x,), calib = draw_inputs_and_calibration(shape, 1, 8)
    program = compile_model(m, pps=None, calib=calib)
    assert [t.name for t in program.outputs] == ["feat", "y"]
    assert program.outputs[0].offset != program.outputs[1].offset
    for got, want, t in zip(run_reference(program, x), ort_run(m, x[None]), program.outputs):
        assert cosine(got, want) > 0.999 and np.max(np.abs(got.ravel() - want.ravel())) < 0.05 * np.abs(want).max()


@pytest.mark.parametrize("op,attrs", [("AveragePool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                                                           count_include_pad=1)),
                                      ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
                                      ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1],
                                                           count_include_pad=1)),
                                      ("GlobalAveragePool", {})])
def test_avgpool_is_exact_to_half_an_lsb(op, attrs):
    # compare()'s tolerance (8% + 3 LSB) is loose enough to hide a wrong divisor at the border or a rounding slip;
    # here the pool alone, on the int8 input it really gets, must be within 1/2 output LSB of the exact average
    # (window size as divisor, padding counted as 0), plus the multiplier's 2^-30 relative error.
    shape = (4, 7, 7)
    m = make_model([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], [("x", (1,) + shape)], ["y"], {})
    xs, calib = draw_inputs_and_calibration(shape, 3, 16)
    program = compile_model(m, pps=None, calib=calib)
    assert [d.op for d in program.descriptors()] == [Op.AVGPOOL]
    s_in, s_out = program.inputs[0].scale, program.outputs[0].scale
    k = attrs.get("kernel_shape", shape[1:])
    s = attrs.get("strides", [1, 1])
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    for x in xs:
        xq = quantize_input(x, s_in).astype(np.float64) * s_in
        xp = np.pad(xq, ((0, 0), (pt, pb), (pl, pr)))
        oh, ow = (xp.shape[1] - k[0]) // s[0] + 1, (xp.shape[2] - k[1]) // s[1] + 1
        exact = np.array([[[xp[c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].mean() for j in range(ow)]
                           for i in range(oh)] for c in range(shape[0])])
        got = run_reference(program, x)[0]
        assert got.shape == exact.shape
        err_lsb = np.abs(got / s_out - np.clip(exact / s_out, -128, 127))
        assert err_lsb.max() <= 0.5 + 1e-6, (float(err_lsb.max()), np.unravel_index(np.argmax(err_lsb), err_lsb.shape))
