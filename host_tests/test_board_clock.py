"""The board backend's PL clock (backends/board/backend.py pl_clock_mhz) from each shape of PYNQ's clock_dict.

pynqmetadata 0.2.0 (PYNQ 4.0) gives pl_clk0's `frequency` (the rate the design achieved, the .hwh's
PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ); 0.1.8 adds `src_sel` to 0.1.7's `enable`, `divisor0`, `divisor1`
(PYNQ 3.x images). Without `frequency` the clock is pynq.Clocks' reading on a local board, else the divisors applied
to the PLL the PS parameters select. No pynq needed: the overlays here are plain objects with the two dicts.
"""
from types import SimpleNamespace

import pytest

from sps_pynq.backends.board import backend as board_backend

ACHIEVED_MHZ = 149.998505                 # Vivado's ACT_FREQMHZ for IOPLL 1499.985 MHz / 10
FROM_DIVISORS = 33.333 * 90 / 2 / 10      # 149.9985

# The PS parameters of a ZCU104 design clocked as hw_src/vivado/block_design.tcl asks (values as in a .hwh).
PS_PARAMS = {"PSU__PSS_REF_CLK__FREQMHZ": "33.333", "PSU__CRL_APB__PL0_REF_CTRL__SRCSEL": "IOPLL",
             "PSU__CRL_APB__IOPLL_CTRL__FBDIV": "90", "PSU__CRL_APB__IOPLL_CTRL__DIV2": "1",
             "PSU__CRL_APB__IOPLL_FRAC_CFG__ENABLED": "0", "PSU__CRL_APB__IOPLL_CTRL__FRACDATA": "0.000000",
             "PSU__CRL_APB__PL0_REF_CTRL__DIVISOR0": "10", "PSU__CRL_APB__PL0_REF_CTRL__DIVISOR1": "1",
             "PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ": f"{ACHIEVED_MHZ:.6f}"}
IP_DICT = {"sps_core_0": {"type": "sps_pynq:sps:sps_core:1.0", "parameters": {}},
           "zynq_ultra_ps_e_0": {"type": "xilinx.com:ip:zynq_ultra_ps_e:3.5", "parameters": PS_PARAMS}}
SHAPES = {
    "0.2.0": {"enable": 1, "frequency": ACHIEVED_MHZ, "divisor0": 10, "divisor1": 1, "src_sel": "IOPLL"},
    "0.1.8": {"enable": 1, "divisor0": 10, "divisor1": 1, "src_sel": "IOPLL"},
    "0.1.7": {"enable": 1, "divisor0": 10, "divisor1": 1},
}


def overlay(shape, ip_dict=IP_DICT):
    clock_dict = {0: dict(SHAPES[shape])} if shape else {}
    clock_dict.update({i: {"enable": 0, "divisor0": 15, "divisor1": 1} for i in (1, 2, 3)} if shape else {})
    return SimpleNamespace(clock_dict=clock_dict, ip_dict=ip_dict)


@pytest.mark.parametrize("shape, clocks, expected, source", [
    ("0.2.0", None, ACHIEVED_MHZ, "clock_dict frequency"),
    ("0.2.0", SimpleNamespace(fclk0_mhz=150.5), ACHIEVED_MHZ, "clock_dict frequency"),
    ("0.1.8", None, FROM_DIVISORS, "IOPLL / divisor0 / divisor1"),
    ("0.1.7", None, FROM_DIVISORS, "IOPLL / divisor0 / divisor1"),
    ("0.1.7", SimpleNamespace(fclk0_mhz=149.998), 149.998, "pynq.Clocks"),         # a local board
    ("0.1.7", SimpleNamespace(), FROM_DIVISORS, "IOPLL / divisor0 / divisor1"),    # Clocks unreadable
    (None, None, board_backend.DEFAULT_CLOCK_MHZ, "default (the overlay names no PL clock)"),
])
def test_pl_clock_from_each_metadata_shape(shape, clocks, expected, source):
    mhz, where = board_backend.pl_clock_mhz(overlay(shape), clocks)
    assert where == source
    assert mhz == pytest.approx(expected, abs=1e-6)


def test_divisors_without_the_ps_parameters_fall_back_to_the_default():
    mhz, where = board_backend.pl_clock_mhz(overlay("0.1.7", ip_dict={}))
    assert (mhz, where) == (board_backend.DEFAULT_CLOCK_MHZ, "default (the overlay names no PL clock)")


def test_pl_clock_follows_the_pll_the_hwh_selects():
    """A design clocked from the RPLL with a fractional feedback divider: the lookup reads SRCSEL, FBDIV+FRACDATA."""
    params = dict(PS_PARAMS, **{"PSU__CRL_APB__PL0_REF_CTRL__SRCSEL": "RPLL",
                                "PSU__CRL_APB__RPLL_CTRL__FBDIV": "72", "PSU__CRL_APB__RPLL_CTRL__DIV2": "1",
                                "PSU__CRL_APB__RPLL_FRAC_CFG__ENABLED": "1",
                                "PSU__CRL_APB__RPLL_CTRL__FRACDATA": "0.5"})
    ol = SimpleNamespace(clock_dict={0: {"enable": 1, "divisor0": 6, "divisor1": 2}},
                         ip_dict={"ps": {"type": "xilinx.com:ip:zynq_ultra_ps_e:3.5", "parameters": params}})
    mhz, where = board_backend.pl_clock_mhz(ol)
    assert where == "RPLL / divisor0 / divisor1"
    assert mhz == pytest.approx(33.333 * 72.5 / 2 / 6 / 2, abs=1e-6)
