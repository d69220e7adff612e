"""The whole SPS core (sps_top) in cocotb on Verilator: registers, every layer kind bit-exact against
sps_pynq.reference, a small network with statistics, AXI back-pressure, resets mid-run, error codes.

The small configuration (2 x 4, 64-bit AXI) runs every test, and so does small_wide (2 x 16: more columns than
an AXI beat has bytes); the default zcu104 configuration (16 x 16,
128-bit AXI) runs the registers, a few small layers, the dense weight prefetch, the stride-2 MAC cycles and the
shared residue classes.
Each configuration is built once, in build/rtl/.
"""

import pytest

from sps_pynq.backends import rtl_build  # noqa: E402
from sps_pynq.hw.config import get_config  # noqa: E402

pytestmark = pytest.mark.skipif(rtl_build.setup_verilator() is None, reason="verilator not installed")

SMALL_TESTS = ["test_registers", "test_layers", "test_conv_shapes", "test_network_with_stats", "test_dense_prefetch",
               "test_backpressure", "test_reset_mid_run", "test_errors", "test_bands", "test_stride_2",
               "test_shared_classes", "test_kept_outputs"]


def _run(config: str, testcase: str, **env):
    hw = get_config(config)
    runner = rtl_build.build("sps_top", rtl_build.top_parameters(hw), hw.name)
    rtl_build.run(runner, "sps_top", "test_top", {"SPS_HW": hw.name, **env}, testcase=testcase)


@pytest.mark.parametrize("testcase", SMALL_TESTS)
def test_small(testcase):
    _run("small", testcase, SPS_SEED="1", SPS_N_PER_KIND="2")


@pytest.mark.parametrize("testcase", SMALL_TESTS)
def test_small_wide(testcase):
    """C = 16 columns on 8-byte beats: buffer rows written in two beats, output segments over up to three."""
    _run("small_wide", testcase, SPS_SEED="2", SPS_N_PER_KIND="2")


@pytest.mark.slow
@pytest.mark.parametrize("testcase", ["test_registers", "test_layers", "test_dense_prefetch", "test_stride_2",
                                      "test_shared_classes", "test_kept_outputs"])
def test_zcu104(testcase):
    _run("zcu104", testcase, SPS_SEED="3", SPS_N_PER_KIND="1")


@pytest.mark.slow
@pytest.mark.parametrize("testcase", ["test_registers", "test_layers", "test_stride_2", "test_shared_classes",
                                      "test_kept_outputs"])
def test_zcu104_16x32(testcase):
    """The 512-MAC configuration: 32-byte rows over 16-byte beats at the zcu104's buffer sizes."""
    _run("zcu104_16x32", testcase, SPS_SEED="4", SPS_N_PER_KIND="1")
