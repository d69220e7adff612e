"""The virtual overlay is shaped like the real one: PYNQ's own metadata parser (pynqmetadata + pynq's
RuntimeMetadataParser, unmodified) finds in overlays/virtual_zcu104/sps.hwh the core, its interrupt through the
axi_intc and the PL clock, directly and through pynq.Overlay on the virtual board; the design it describes is the
block design of hw_src/vivado (compared with the Tcl's dry run); the board backend reads the PL clock from either
shape of clock_dict (pynqmetadata 0.2 with `frequency`, 0.1.x with divisors only) or from pynq.Clocks.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pynq")
pytest.importorskip("pynqmetadata")

from layer_factory import random_packed_program  # noqa: E402

from sps_pynq.backends.board import BoardBackend  # noqa: E402
from sps_pynq.hw.config import CONFIGS  # noqa: E402
from sps_pynq.hw.ip import CORE_BASE, CORE_INSTANCE, CORE_RANGE, CORE_VLNV, PS_INSTANCE  # noqa: E402
from sps_pynq.virtual_board import overlay as vo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "overlays" / "virtual_zcu104"
HWH = OVERLAY / "sps.hwh"
COMPARE = ROOT / "hw_src" / "vivado" / "compare_hwh.py"
HW = CONFIGS["zcu104"]
ACHIEVED_MHZ = 149.998505            # 33.333 MHz x 90 / 2 / 10, as a 32-bit float with 6 decimals (Vivado's way)


def parse(hwh: Path):
    from pynqmetadata.frontends import Metadata
    from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RuntimeMetadataParser(Metadata(input=str(hwh)))


@pytest.fixture(scope="module")
def parsed():
    return parse(HWH)


def assert_real_shape(ip_dict, interrupt_controllers, interrupt_pins, clock0):
    """What the runtime needs from an overlay, as PYNQ lists it for PYNQ's own ZCU104 base design."""
    core = ip_dict[CORE_INSTANCE]
    assert core["type"] == CORE_VLNV and core["phys_addr"] == CORE_BASE and core["addr_range"] == CORE_RANGE
    assert core["interrupts"] == {"irq_o": {"controller": vo.INTC_NAME, "index": 0,
                                            "fullpath": f"{CORE_INSTANCE}/irq_o"}}
    intc = ip_dict[vo.INTC_NAME]
    assert intc["type"] == "xilinx.com:ip:axi_intc:4.1"
    assert (intc["phys_addr"], intc["addr_range"]) == (vo.INTC_BASE, vo.INTC_RANGE)
    assert intc["interrupts"] == {}
    assert dict(interrupt_controllers) == {vo.INTC_NAME: {"parent": "", "index": 0, "raw_irq": 121}}
    assert interrupt_pins[f"{CORE_INSTANCE}/irq_o"] == {"controller": vo.INTC_NAME, "index": 0,
                                                         "fullpath": f"{CORE_INSTANCE}/irq_o"}
    assert set(interrupt_pins) == {f"{CORE_INSTANCE}/irq_o", f"{vo.IRQ_CONCAT}/In0"}
    assert clock0 == {"enable": 1, "frequency": ACHIEVED_MHZ, "divisor0": 10, "divisor1": 1, "src_sel": "IOPLL"}
    assert sorted(ip_dict) == sorted([CORE_INSTANCE, vo.INTC_NAME, PS_INSTANCE])


# -- PYNQ's parser, no board ----------------------------------------------------------------------------------------
def test_pynq_parser_finds_core_interrupt_and_clock(parsed):
    assert_real_shape(parsed.ip_dict, parsed.interrupt_controllers, parsed.interrupt_pins, parsed.clock_dict[0])
    ps = parsed.ip_dict[PS_INSTANCE]["parameters"]
    assert ps["C_MAXIGP0_DATA_WIDTH"] == "32" and ps["C_SAXIGP2_DATA_WIDTH"] == str(HW.axi_data_bits)


def test_generated_files_are_current_and_the_bit_names_the_hwh():
    assert HWH.read_text() == vo.hwh_text(HW), "regenerate with python -m sps_pynq.virtual_board.overlay"
    bit = (OVERLAY / "sps.bit").read_bytes()
    assert bit == vo.bit_bytes(HW)
    # pynq caches parsed metadata under the .bit's hash: a changed .hwh must change the .bit
    payload = bit[bit.index(vo.PAYLOAD_MAGIC) + len(vo.PAYLOAD_MAGIC):].rstrip(b"\0")
    assert json.loads(payload)["hwh_sha256"] == hashlib.sha256(HWH.read_bytes()).hexdigest()
    swapped = b"".join(bit[i:i + 4][::-1] for i in range(bit.index(vo.PAYLOAD_MAGIC), len(bit), 4))
    assert vo.config_from_bin(swapped) == HW


def test_every_configuration_parses(tmp_path):
    for name, hw in CONFIGS.items():
        (tmp_path / f"{name}.hwh").write_text(vo.hwh_text(hw))
        p = parse(tmp_path / f"{name}.hwh")
        assert p.ip_dict[CORE_INSTANCE]["parameters"]["Rows"] == str(hw.rows)
        assert p.ip_dict[PS_INSTANCE]["parameters"]["C_SAXIGP2_DATA_WIDTH"] == str(hw.axi_data_bits)
        assert p.ip_dict[CORE_INSTANCE]["interrupts"]["irq_o"]["index"] == 0


# -- the same design as hw_src/vivado --------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
def test_virtual_design_is_the_tcl_block_design(tmp_path):
    from test_vivado_flow import calls_of, dry_run
    proc, calls = dry_run(tmp_path, f"param.AxiDataWidth={HW.axi_data_bits}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells, _ = vo.design(HW)
    tcl_cells = {c[-1]: c[c.index("-vlnv") + 1].split(":")[2] for c in calls_of(calls, "create_bd_cell")}
    assert tcl_cells == {c.name: c.modtype for c in cells}
    # nets: driver first in both
    tcl_nets = {(n[1], frozenset(n[2:])) for n in calls_of(calls, "connect_bd_net")}
    ours = {(f"{d[0]}/{d[1]}", frozenset(f"{c}/{p}" for c, p in sinks)) for _, (d, *sinks) in vo.NETS}
    assert tcl_nets == ours
    tcl_intf = {tuple(c[1:]) for c in calls_of(calls, "connect_bd_intf_net")}
    assert tcl_intf == {(f"{m[0]}/{m[1]}", f"{s[0]}/{s[1]}") for m, s in vo.INTERFACE_NETS}
    # addresses
    assigned = {c[-2].split("/")[0]: (int(c[c.index("-offset") + 1], 16), c[c.index("-range") + 1])
                for c in calls_of(calls, "assign_bd_address") if "-offset" in c}
    assert assigned == {CORE_INSTANCE: (CORE_BASE, "64K"), vo.INTC_NAME: (vo.INTC_BASE, "64K")}
    assert vo.INTC_RANGE == 64 << 10
    # the cells' settings
    config = {}
    for c in calls_of(calls, "set_property"):
        if c[1] == "-dict":
            words = c[2].split()
            config.update({(c[-1], k[len("CONFIG."):]): v for k, v in zip(words[0::2], words[1::2])})
    by_name = {c.name: dict(c.params) for c in cells}
    for (cell, key), value in config.items():
        if key == "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ":
            assert value == str(vo.PL_CLK_MHZ) == by_name[cell][key]
        else:
            assert by_name[cell].get(key) == value, (cell, key)


# -- pynq.Overlay on the virtual board --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def board():
    from sps_pynq.virtual_board.server import VirtualBoard
    saved = {k: os.environ.get(k) for k in ("SPS_PYNQ_REMOTE", "SPS_PYNQ_OVERLAY")}
    with VirtualBoard(host="127.0.0.1", port=0) as vb:
        os.environ["SPS_PYNQ_REMOTE"] = vb.address
        os.environ["SPS_PYNQ_OVERLAY"] = str(OVERLAY)
        try:
            yield vb
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_unmodified_pynq_overlay_finds_core_interrupt_and_clock(board):
    import pynq
    from sps_pynq.backends.board.discovery import get_device
    device = get_device(pynq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ol = pynq.Overlay(str(OVERLAY / "sps.bit"), device=device)
    assert_real_shape(ol.ip_dict, ol.interrupt_controllers, ol.interrupt_pins, ol.clock_dict[0])


def test_board_backend_reads_the_pl_clock_from_the_overlay(board):
    program = random_packed_program(np.random.default_rng(0), HW, n_layers=2)
    with BoardBackend() as be:
        be.load(program)
        st = be.stats()
    assert st["clock_mhz"] == ACHIEVED_MHZ and st["clock_source"] == "clock_dict frequency"


def test_board_backend_reads_the_pl_clock_from_pynq3_metadata(board, tmp_path, monkeypatch):
    """pynqmetadata 0.1.x (PYNQ 3 images) puts only enable, divisor0 and divisor1 in clock_dict."""
    import pynq

    class Pynq3Overlay(pynq.Overlay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.clock_dict = {i: {k: c[k] for k in ("enable", "divisor0", "divisor1")}
                               for i, c in self.clock_dict.items()}

    monkeypatch.setattr(pynq, "Overlay", Pynq3Overlay)
    for f in ("sps.bit", "sps.hwh"):                   # another path: the backend caches overlays per file
        shutil.copy(OVERLAY / f, tmp_path / f)
    program = random_packed_program(np.random.default_rng(1), HW, n_layers=2)
    with BoardBackend(overlay=tmp_path / "sps.bit") as be:
        be.load(program)
        st = be.stats()
    assert st["clock_source"] == "IOPLL / divisor0 / divisor1"
    assert st["clock_mhz"] == pytest.approx(33.333 * 90 / 2 / 10, abs=1e-6)


# -- compare_hwh.py: the check a first real build runs --------------------------------------------------------------
def test_compare_hwh_agrees_with_itself_and_names_a_broken_interrupt(tmp_path, monkeypatch):
    r = subprocess.run([sys.executable, str(COMPARE), str(HWH)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the same (core, interrupt controller, interrupt pins, pl_clk0)" in r.stdout
    assert "structure: 0 difference(s)" in r.stdout
    # the core wired straight to pl_ps_irq0, as before issue 18 (the controller left unconnected), and another
    # PL0 divisor: PYNQ lists no interrupt for the core, and the clock differs
    irq_nets = {f"{CORE_INSTANCE}_irq_o", f"{vo.IRQ_CONCAT}_dout", f"{vo.INTC_NAME}_irq"}
    monkeypatch.setattr(vo, "NETS", [n for n in vo.NETS if n[0] not in irq_nets]
                        + [(f"{CORE_INSTANCE}_irq_o", [(CORE_INSTANCE, "irq_o"), (PS_INSTANCE, "pl_ps_irq0")])])
    broken = vo.hwh_text(HW).replace('NAME="PSU__CRL_APB__PL0_REF_CTRL__DIVISOR0" VALUE="10"',
                                     'NAME="PSU__CRL_APB__PL0_REF_CTRL__DIVISOR0" VALUE="12"')
    (tmp_path / "real.hwh").write_text(broken)
    r = subprocess.run([sys.executable, str(COMPARE), str(tmp_path / "real.hwh")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DIFFERENT ip_dict[sps_core] interrupts: [] != [('irq_o', 'axi_intc_0', 0)]" in r.stdout
    assert "DIFFERENT clock_dict[0] divisor0: 12 != 10" in r.stdout
    assert "DIFFERENT interrupt_controllers: {} != {'axi_intc_0': ('', 0, 121)}" in r.stdout
    assert f"note: {CORE_INSTANCE}/irq_o: O -> [('{PS_INSTANCE}', 'pl_ps_irq0')]" in r.stdout
