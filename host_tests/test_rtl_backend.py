"""The `rtl` backend: Session(program, backend="rtl") runs the SystemVerilog core (Verilator + cocotb) and
matches the `sim` backend (C golden model) bit for bit, with the core's own cycle counters in stats()."""

import numpy as np
import pytest

from sps_pynq.backends import rtl_build  # noqa: E402
import layer_factory as lf  # noqa: E402
from sps_pynq.errors import BackendError, DeviceTimeoutError  # noqa: E402
from sps_pynq.hw.config import get_config  # noqa: E402
from sps_pynq.runtime.session import Session  # noqa: E402

HAVE_VERILATOR = rtl_build.setup_verilator() is not None


@pytest.mark.skipif(not HAVE_VERILATOR, reason="verilator not installed")
def test_rtl_matches_sim_on_a_small_network():
    hw = get_config("small")
    rng = np.random.default_rng(11)
    program = lf.random_packed_program(rng, hw, n_layers=4, in_shape=(4, 9, 9))
    x = rng.integers(-128, 128, size=(2,) + program.inputs[0].shape, dtype=np.int64).astype(np.int8)
    with Session(program, backend="sim") as sim:
        want = sim.run_int8(x)
    with Session(program, backend="rtl") as rtl:
        got = rtl.run_int8(x)
        stats = rtl.stats()
    assert got.shape == want.shape
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} of {got.size} output bytes differ"
    assert stats["backend"] == "rtl" and stats["cycles"] > 0
    assert 0 < stats["mac_cycles"] < stats["cycles"]
    assert len(stats["layers"]) == program.num_layers
    assert sum(layer["cycles"] for layer in stats["layers"]) <= stats["cycles"]
    assert stats["bytes_written"] >= program.outputs[0].nbytes
    # MAC efficiency: nonzero MACs over the array's MAC slots (cycles x R x C), per layer and for the run
    slots = hw.rows * hw.cols
    assert stats["mac_efficiency"] == pytest.approx(stats["macs"] / (stats["cycles"] * slots))
    for layer in stats["layers"]:
        assert layer["mac_efficiency"] == pytest.approx(layer["macs"] / (layer["cycles"] * slots))
    assert any(layer["mac_efficiency"] > 0 for layer in stats["layers"])


def test_missing_verilator_is_a_backend_error(monkeypatch):
    monkeypatch.setattr(rtl_build, "setup_verilator", lambda: None)
    from sps_pynq.backends.rtl import RtlBackend
    with pytest.raises(BackendError, match="Verilator"):
        RtlBackend()


@pytest.mark.skipif(not HAVE_VERILATOR, reason="verilator not installed")
def test_timeout_is_a_device_timeout_error():
    hw = get_config("small")
    program = lf.random_packed_program(np.random.default_rng(12), hw, n_layers=2, in_shape=(4, 9, 9))
    with Session(program, backend="rtl", timeout_cycles=300) as s:
        with pytest.raises(DeviceTimeoutError, match="CTRL"):
            s.run_int8(np.zeros(program.inputs[0].shape, dtype=np.int8))


class _TinyResNet:
    """conv (PPS) -> maxpool -> residual block (two convs + identity add) -> global average pool -> FC."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.a = nn.Conv2d(c, c, 3, padding=1)
                self.b = nn.Conv2d(c, c, 3, padding=1)

            def forward(self, x):
                return torch.relu(x + self.b(torch.relu(self.a(x))))

        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), Block(8),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_VERILATOR, reason="verilator not installed")
def test_compiled_model_rtl_matches_sim():
    pytest.importorskip("torch")
    from sps_pynq.compiler import compile_model
    rng = np.random.default_rng(5)
    calib = rng.standard_normal((4, 3, 12, 12)).astype(np.float32)
    program = compile_model(_TinyResNet.build(), hw="small", pps=(4, 2), input_shape=(3, 12, 12), calib=calib)
    ops = [d.op.name for d in program.descriptors()]
    assert {"CONV", "MAXPOOL", "ADD", "AVGPOOL"} <= set(ops), ops
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    with Session(program, backend="sim") as sim:
        want = sim.run(x)
    with Session(program, backend="rtl") as rtl:
        got = rtl.run(x)
        stats = rtl.stats()
    assert np.array_equal(got, want), (got, want)
    assert len(stats["layers"]) == len(ops) and stats["mac_cycles"] > 0


@pytest.mark.skipif(not HAVE_VERILATOR, reason="verilator not installed")
def test_cli_run_on_rtl_keeps_tool_output_out(tmp_path, capfd):
    """`sps-pynq run --backend rtl` prints the result and the core's cycles, not Verilator's or cocotb's log."""
    from sps_pynq import model_file
    from sps_pynq.cli import main
    program = lf.random_packed_program(np.random.default_rng(13), get_config("small"), n_layers=2,
                                       in_shape=(4, 9, 9))
    path = tmp_path / "small.spsmodel"
    model_file.save(program, path)
    assert main(["run", str(path), "--backend", "rtl", "--top", "2"]) == 0
    out, err = capfd.readouterr()
    assert "core clock cycles (last run):" in out and "sample 0: top 2 classes" in out
    assert "cocotb" not in out + err and "Verilat" not in out + err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_VERILATOR, reason="verilator not installed")
def test_compiled_resnet18_with_bands_rtl_matches_sim(zoo_programs):
    """ResNet-18 (ImageNet architecture) at 3x64x64 on the `small` configuration (16 KiB activation buffer), so
    that layers run in bands: the Verilog equals sim byte for byte (issue 10). ~11 M clock cycles, ~2 min."""
    pytest.importorskip("torch")
    program = zoo_programs.compile("resnet18_imagenet", hw="small", pps="8x4", first_layer_dense=True,
                                   input_shape=(3, 64, 64))
    assert max(m["bands"] for m in program.metadata["layers"]) > 1
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with Session(program, backend="sim") as sim:
        want = sim.run(x)
    with Session(program, backend="rtl") as rtl:
        assert np.array_equal(rtl.run(x), want)
