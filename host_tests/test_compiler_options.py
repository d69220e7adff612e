"""CompileOptions: names resolved on construction, keyword arguments and an options object give the same
program, and mistakes in the options are errors naming what is allowed."""
import numpy as np
import pytest
from onnx import helper

from sps_pynq.compiler import CompileOptions, compile_model, import_and_lower
from sps_pynq.compiler.testing import make_model
from sps_pynq.errors import CompileError
from sps_pynq.hw.config import get_config
from sps_pynq.pps import PpsSpecError


def tiny():
    """The same conv + relu model on every call."""
    w = np.random.default_rng(8).standard_normal((8, 3, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    return make_model(nodes, [("x", [1, 3, 6, 6])], ["y"], {"w": w})


def test_names_and_specs_are_resolved():
    o = CompileOptions(hw="small", pps="4x2", input_shape=[3, 8, 8])
    assert o.hw == get_config("small") and o.pps == (4, 2) and o.input_shape == (3, 8, 8)
    assert o.pps_text == "4x2" and CompileOptions(pps="dense").pps is None
    assert CompileOptions().hw == get_config() and CompileOptions().pps == (8, 4)
    assert CompileOptions(pps=None).pps_text == "dense"
    with pytest.raises(CompileError, match="unknown hardware configuration 'nope'"):
        CompileOptions(hw="nope")
    with pytest.raises(PpsSpecError):
        CompileOptions(pps="4by2")


def test_of_replaces_the_given_fields_only():
    base = CompileOptions(pps=(4, 2), num_calib=3)
    assert CompileOptions.of(base) is base
    o = CompileOptions.of(base, seed=7, first_layer_dense=True)
    assert (o.pps, o.num_calib, o.seed, o.first_layer_dense) == ((4, 2), 3, 7, True)
    with pytest.raises(TypeError, match="unknown compile option.*num_calibs.*the options are hw, pps"):
        CompileOptions.of(base, num_calibs=4)
    with pytest.raises(TypeError, match="options must be a CompileOptions.*by name"):
        CompileOptions.of("zcu104")


@pytest.mark.filterwarnings("ignore:no calibration data")
def test_options_object_and_keywords_give_the_same_program():
    a = compile_model(tiny(), CompileOptions(hw="small", pps="4x2", num_calib=3, seed=2))
    b = compile_model(tiny(), hw="small", pps=(4, 2), num_calib=3, seed=2)
    c = compile_model(tiny(), CompileOptions(hw="small"), pps="4x2", num_calib=3, seed=2)
    assert a.image == b.image == c.image and a.metadata["pps"] == "4x2" and a.hw.name == "small"
    _, layers, _ = import_and_lower(tiny(), CompileOptions(pps=None))
    assert layers[0].pps_how == "dense"
