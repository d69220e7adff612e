"""The ImageNet-size zoo networks at 3x224x224 pack and run in bands on `sim` (issue 10's acceptance).

ResNet-18: top-1 agreement of sim with onnxruntime on the PPS-projected fp32 model over 200 seeded inputs (calibrated
on 32 seeded inputs of the same distribution) >= 99 %; every network: sim equals the numpy reference byte for byte
on one input, and its DDR traffic is within the stated factor of the minimum (every byte once).
"""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from sps_pynq.analysis.traffic import network_traffic, totals  # noqa: E402
from sps_pynq.runtime.session import Session  # noqa: E402

SHAPE = (3, 224, 224)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


@pytest.fixture
def compile_net(zoo_programs):
    def compile_(name, n_calib=32):
        return zoo_programs.compile(name, n_calib=n_calib, pps="8x4", first_layer_dense=True)
    return compile_


@pytest.mark.parametrize("name,ddr_max", [("resnet18_imagenet", 1.05), ("resnet50_imagenet", 1.2),
                                          ("vgg16_imagenet", 1.2)])
def test_packs_in_bands_and_sim_equals_the_reference(name, ddr_max, compile_net):
    program = compile_net(name, n_calib=4)
    bands = [m["bands"] for m in program.metadata["layers"]]
    assert max(bands) > 1 and sum(bands) == program.num_layers
    assert program.metadata["layers"][0]["mode"] == "dense"          # the stem conv stays dense
    x = np.random.default_rng(2).standard_normal((1,) + SHAPE).astype(np.float32)
    with Session(program, backend="sim") as s, Session(program, backend="ref") as r:
        assert np.array_equal(s.run_int8(_q(x, program)), r.run_int8(_q(x, program)))
    assert totals(network_traffic(program))["ratio"] <= ddr_max


def _q(x, program):
    from sps_pynq.runtime.preprocess import quantize
    return quantize(x[0], program.inputs[0].scale)


def test_resnet18_top1_agrees_with_onnxruntime_on_200_inputs(compile_net):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from imagenet_nets import agreement
    program = compile_net("resnet18_imagenet")
    assert agreement(program, "resnet18_imagenet", 200) >= 0.99


def test_resnet18_on_the_virtual_board_equals_sim(monkeypatch, compile_net):
    pytest.importorskip("pynq")
    from pathlib import Path
    from sps_pynq.virtual_board.server import VirtualBoard
    program = compile_net("resnet18_imagenet", n_calib=4)
    x = np.random.default_rng(3).standard_normal((2,) + SHAPE).astype(np.float32)
    with VirtualBoard(host="127.0.0.1", port=0) as vb:
        monkeypatch.setenv("SPS_PYNQ_REMOTE", vb.address)
        monkeypatch.setenv("SPS_PYNQ_OVERLAY", str(Path(__file__).resolve().parents[1] / "overlays" / "virtual_zcu104"))
        with Session(program, backend="board") as b:
            on_board = b.run(x)
            st = b.stats()
    with Session(program, backend="sim") as s:
        assert np.array_equal(on_board, s.run(x))
    assert st.modelled and len(st.layers) == program.num_layers and st.cycles > 0
