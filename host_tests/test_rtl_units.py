"""Unit tests of the RTL datapath blocks (requantizer, indexing unit, PE array, output aligner), cocotb on
Verilator."""

import pytest

from sps_pynq.backends import rtl_build  # noqa: E402

pytestmark = pytest.mark.skipif(rtl_build.setup_verilator() is None, reason="verilator not installed")


@pytest.mark.parametrize("module,params", [
    ("sps_requant", {}),
    ("sps_index_unit", {"EntryWidth": 13}),
    ("sps_pe_array", {"Rows": 2, "Cols": 4}),
    ("sps_out_align", {"DataWidth": 64, "SegBytes": 4}),       # C within a beat (small)
    ("sps_out_align", {"DataWidth": 64, "SegBytes": 16}),      # C = two beats (small_wide)
    ("sps_out_align", {"DataWidth": 128, "SegBytes": 32}),     # zcu104_16x32
])
def test_unit(module, params):
    name = "-".join(f"{k}{v}" for k, v in params.items()) or "default"
    runner = rtl_build.build(module, params, name, sources=rtl_build.unit_sources(module))
    test = {"sps_requant": "test_requant", "sps_index_unit": "test_index_unit", "sps_pe_array": "test_pe_array",
            "sps_out_align": "test_out_align"}
    rtl_build.run(runner, module, "test_units", {"SPS_SEED": "7"}, testcase=test[module])
