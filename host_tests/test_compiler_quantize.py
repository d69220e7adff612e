"""Quantization: the (M, S) choice, per-channel weights, bias, the accumulator guard, pools and ADD."""
import numpy as np
import pytest

from sps_pynq.compiler import quantize as qz
from sps_pynq.compiler.lower import Layer
from sps_pynq.errors import CompileError
from sps_pynq.hw.descriptor import Op
from sps_pynq.reference import requant

RNG = np.random.default_rng(2)


def conv_layer(w, b=None, name="convX"):
    O, I, kh, kw = w.shape
    return Layer(name, Op.CONV, ["x"], "y", (I, 4, 4), (O, 4, 4), [name], kernel=(kh, kw), weights=w,
                 bias=np.zeros(O) if b is None else b)


def test_requant_params_use_31_bits_and_are_accurate():
    f = np.exp(RNG.uniform(np.log(1e-6), np.log(1e3), 1000))
    M, S = qz.requant_params(f)
    assert np.all((M >= 2**30) & (M < 2**31)) and np.all((S >= 0) & (S <= 63))
    np.testing.assert_allclose(qz.requant_value(M, S), f, rtol=2**-29)


def test_requant_params_edges():
    M, S = qz.requant_params([0.0, 1e-25, 2.0**30])
    assert (M[0], S[0]) == (0, 0)
    assert S[1] == 63 and M[1] < 2**30            # tiny factor: fewer bits, never a shift above 63
    assert S[2] == 0 and M[2] == 2**30
    with pytest.raises(CompileError, match="convZ.*2\\^31"):
        qz.requant_params([2.0**31], "convZ")


def test_requant_rounds_as_the_hardware_would():
    # integer requant with the chosen (M, S) is the real product rounded, for values where that is unambiguous
    f = 0.0123
    M, S = qz.requant_params(f)
    v = RNG.integers(-10**6, 10**6, 1000)
    got = requant(v, M[0], S[0])
    assert np.max(np.abs(got - v * f)) <= 0.5 + 1e-3


def test_weights_per_channel_zeros_stay_zero_and_bias():
    w = RNG.standard_normal((4, 3, 3, 3))
    w[:, :, 1, 1] = 0
    w[2] *= 100
    b = RNG.standard_normal(4)
    q = qz.quantize_conv(conv_layer(w, b), s_in=0.05, s_out=0.1)
    assert q.weights.dtype == np.int8 and np.all(q.weights[:, :, 1, 1] == 0)
    assert np.all(np.abs(q.weights).reshape(4, -1).max(axis=1) == 127)
    np.testing.assert_allclose(q.weight_scales, np.abs(w).reshape(4, -1).max(axis=1) / 127)
    np.testing.assert_allclose(q.bias, np.rint(b / (0.05 * q.weight_scales)))
    np.testing.assert_allclose(qz.requant_value(q.mult, q.shift), 0.05 * q.weight_scales / 0.1, rtol=1e-8)


def test_all_zero_channel_and_huge_bias():
    w = RNG.standard_normal((3, 2, 3, 3)) * 1e-6
    w[0] = 0
    b = np.array([1.0, 1e4, 0.0])
    q = qz.quantize_conv(conv_layer(w, b), s_in=0.01, s_out=0.5)
    assert np.all(q.weights[0] == 0) and np.all(np.abs(q.bias) <= 2**30)
    np.testing.assert_allclose(q.bias * 0.01 * q.weight_scales, b, rtol=1e-6, atol=1e-6)


def test_accumulator_overflow_is_a_compile_error():
    w = np.ones((1, 15000, 3, 3))       # 135000 weights of 127: 128 * 127 * 135000 > 2^31
    with pytest.raises(CompileError, match="layer bigfc.*accumulator could overflow.*channel 0"):
        qz.quantize_conv(conv_layer(w, name="bigfc"), 0.1, 0.1)


def test_avgpool_folds_the_divisor():
    layer = Layer("pool", Op.AVGPOOL, ["x"], "y", (4, 6, 6), (4, 3, 3), ["pool"], kernel=(2, 2), strides=(2, 2))
    q = qz.quantize_avgpool(layer, s_in=0.2, s_out=0.1)
    assert qz.requant_value(q.mult, q.shift)[0] == pytest.approx(0.2 / (4 * 0.1), rel=1e-8)


def test_add_shares_one_shift():
    layer = Layer("add", Op.ADD, ["a", "b"], "y", (4, 2, 2), (4, 2, 2), ["add"])
    q = qz.quantize_add(layer, 0.3, 0.01, 0.2)
    assert q.shift.shape == (1,) and q.mult[0] < 2**31 and q.mult[0] >= 2**30
    assert q.mult[0] / 2.0**q.shift[0] == pytest.approx(1.5, rel=1e-8)
    assert q.mult[1] / 2.0**q.shift[0] == pytest.approx(0.05, rel=1e-7)


def test_maxpool_keeps_input_scale():
    layers = [Layer("pool", Op.MAXPOOL, ["x"], "y", (2, 4, 4), (2, 2, 2), ["pool"], kernel=(2, 2), strides=(2, 2))]
    q, scales = qz.quantize(layers, {"x": 2.54, "y": 100.0}, lambda m: m / 127)
    assert scales["y"] == scales["x"] == pytest.approx(0.02) and q["pool"].out_scale == scales["x"]
