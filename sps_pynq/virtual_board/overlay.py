"""Files of the virtual ZCU104 overlay: `sps.hwh` (the block design) and `sps.bit` (a marker, not a bitstream).

Vivado is not on these machines, so the virtual board's overlay is generated here from the Python definitions
and labelled as such inside both files. The .hwh describes the block design hw_src/vivado/block_design.tcl
builds, in the shape Vivado writes a hardware handoff (compared with PYNQ v2.4's ZCU104 base.hwh, Vivado 2018.3):
every cell a <MODULE> with its parameters, its ports with the nets and pins they connect to, its bus interfaces
with their port maps, and the memory maps of the masters. So PYNQ's own metadata parser, unmodified, finds in it
what it would find in the real overlay:

    ip_dict          sps_core_0 at CORE_BASE (64 KiB), axi_intc_0 at INTC_BASE, the PS
    interrupt_pins   sps_core_0/irq_o on axi_intc_0 (index 0), whose irq drives pl_ps_irq0[0] (raw IRQ 121)
    clock_dict[0]    pl_clk0 enabled, IOPLL / 10 / 1 = 149.998505 MHz achieved (150 requested)

    zynq_ultra_ps_e_0/M_AXI_HPM0_FPD -> smartconnect_ctrl -> M00: sps_core_0/s_axil, M01: axi_intc_0/s_axi
    sps_core_0/m_axi -> smartconnect_ddr -> zynq_ultra_ps_e_0/S_AXI_HP0_FPD
    sps_core_0/irq_o -> irq_concat/In0;  irq_concat/dout -> axi_intc_0/intr;  axi_intc_0/irq -> pl_ps_irq0
    zynq_ultra_ps_e_0/pl_clk0 -> every clock;  pl_resetn0 -> proc_sys_reset_0 -> the resets

What it leaves out of a real one (overlays/README.md lists it): most of the PS's ~2,900 parameters and unused ports,
the SmartConnects' internals, register fields, documents, and anything Vivado decides that is not written in
the Tcl (exact IP versions, segment names beyond the ones below).

The .bit file has a valid .bit header; its payload names the HwConfig the virtual core reports, so the server
learns which core to model when pynq downloads it.

    python -m sps_pynq.virtual_board.overlay [--hw zcu104] [--out overlays/virtual_zcu104]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

from ..hw.config import CONFIGS, HwConfig, get_config
from ..hw.ip import (CORE_BASE, CORE_INSTANCE, CORE_RANGE, CORE_VLNV, PS_INSTANCE, REG_BLOCK,  # noqa: F401
                     VIRTUAL_DESIGN_PREFIX, is_virtual_overlay)

# The real overlay's names (instance, VLNV, base address and range, PS) come from sps_pynq/hw/ip.py, as the
# Vivado scripts' do; the other cells, their addresses and the PS ports are those of hw_src/vivado/block_design.tcl
# (host_tests/test_vivado_flow.py compares this design with the Tcl's dry run).
CORE_NAME, PS_NAME = CORE_INSTANCE, PS_INSTANCE
INTC_NAME = "axi_intc_0"
INTC_BASE = 0xA001_0000
INTC_RANGE = 0x1_0000
IRQ_CONCAT = "irq_concat"            # one-input xlconcat in front of the controller's intr (as PYNQ's base design)
SMC_CTRL, SMC_DDR, RESET_NAME = "smartconnect_ctrl", "smartconnect_ddr", "proc_sys_reset_0"

# The PS clock as the ZCU104 preset and block_design.tcl set it: PSS_REF_CLK x FBDIV / 2 (DIV2) = IOPLL, and
# pl_clk0 = IOPLL / DIVISOR0 / DIVISOR1. Vivado writes the achieved rate as a 32-bit float with 6 decimals.
PL_CLK_MHZ = 150                      # requested (build_overlay.tcl clk_mhz)
PSS_REF_CLK_MHZ = 33.333
IOPLL_FBDIV, IOPLL_DIV2 = 90, 1
PL0_DIVISORS = (10, 1)


def _float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


IOPLL_MHZ = PSS_REF_CLK_MHZ * IOPLL_FBDIV / (2 if IOPLL_DIV2 else 1)
PL_CLK_ACT_MHZ = round(_float32(IOPLL_MHZ / PL0_DIVISORS[0] / PL0_DIVISORS[1]), 6)   # 149.998505
PL_CLK_HZ = round(PL_CLK_ACT_MHZ * 1e6)

PAYLOAD_MAGIC = b"SPS-VIRTUAL-OVERLAY\0"
DESIGN_PREFIX = VIRTUAL_DESIGN_PREFIX

REPO_OVERLAY = Path(__file__).resolve().parents[2] / "overlays" / "virtual_zcu104"

# -- AXI signals: (LOGICAL, width, driven by the master) -----------------------------------------------------------
# Widths: an int, or "addr" / "data" / "strb" / "id" / "user" resolved per interface.
AXI4 = [
    ("AWID", "id", True), ("AWADDR", "addr", True), ("AWLEN", 8, True), ("AWSIZE", 3, True),
    ("AWBURST", 2, True), ("AWLOCK", 1, True), ("AWCACHE", 4, True), ("AWPROT", 3, True), ("AWQOS", 4, True),
    ("AWUSER", "user", True), ("AWVALID", 1, True), ("AWREADY", 1, False),
    ("WDATA", "data", True), ("WSTRB", "strb", True), ("WLAST", 1, True), ("WVALID", 1, True),
    ("WREADY", 1, False),
    ("BID", "id", False), ("BRESP", 2, False), ("BVALID", 1, False), ("BREADY", 1, True),
    ("ARID", "id", True), ("ARADDR", "addr", True), ("ARLEN", 8, True), ("ARSIZE", 3, True),
    ("ARBURST", 2, True), ("ARLOCK", 1, True), ("ARCACHE", 4, True), ("ARPROT", 3, True), ("ARQOS", 4, True),
    ("ARUSER", "user", True), ("ARVALID", 1, True), ("ARREADY", 1, False),
    ("RID", "id", False), ("RDATA", "data", False), ("RRESP", 2, False), ("RLAST", 1, False),
    ("RVALID", 1, False), ("RREADY", 1, True),
]
AXI4_LITE = [
    ("AWADDR", "addr", True), ("AWPROT", 3, True), ("AWVALID", 1, True), ("AWREADY", 1, False),
    ("WDATA", "data", True), ("WSTRB", "strb", True), ("WVALID", 1, True), ("WREADY", 1, False),
    ("BRESP", 2, False), ("BVALID", 1, False), ("BREADY", 1, True),
    ("ARADDR", "addr", True), ("ARPROT", 3, True), ("ARVALID", 1, True), ("ARREADY", 1, False),
    ("RDATA", "data", False), ("RRESP", 2, False), ("RVALID", 1, False), ("RREADY", 1, True),
]
NO_PROT = ("AWPROT", "ARPROT")            # axi_intc's s_axi has no AxPROT
NO_QOS_USER = ("AWQOS", "ARQOS", "AWUSER", "ARUSER")   # the core's m_axi (sps_ip_top.v)

AXIMM = "xilinx.com:interface:aximm:1.0"


@dataclass
class Port:
    name: str
    out: bool
    width: Optional[int] = None        # None: a scalar (no LEFT/RIGHT); 1 for a [0:0] vector
    sigis: str = "undef"
    attrs: Dict[str, str] = field(default_factory=dict)


@dataclass
class BusIf:
    name: str
    master: bool
    params: List[Tuple[str, str]]
    portmap: List[Tuple[str, str]]     # (LOGICAL, PHYSICAL)
    datawidth: Optional[int] = None
    vlnv: str = AXIMM
    busname: str = ""                  # the interface net (set when the design is wired)


@dataclass
class Cell:
    name: str
    vlnv: str
    modclass: str
    params: List[Tuple[str, str]]
    ports: List[Port] = field(default_factory=list)
    busifs: List[BusIf] = field(default_factory=list)
    memranges: List[Dict[str, str]] = field(default_factory=list)
    addressblocks: List[str] = field(default_factory=list)     # XML of <ADDRESSBLOCK> elements
    head: Dict[str, str] = field(default_factory=dict)          # extra MODULE attributes
    document: Optional[str] = None

    @property
    def modtype(self) -> str:
        return self.vlnv.split(":")[2]

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)


def _width(spec, w: Dict[str, int]) -> int:
    return spec if isinstance(spec, int) else w[spec]


def axi_ports(prefix: str, signals, master: bool, w: Dict[str, int], skip: Sequence[str] = (),
              lower: bool = True, vectors: Sequence[str] = ()) -> Tuple[List[Port], List[Tuple[str, str]]]:
    """Ports and port map of one AXI interface: physical name prefix + logical (lower case), the master's outputs
    driven. Single bits are scalars except the logicals in `vectors` ([0:0])."""
    ports, portmap = [], []
    for logical, spec, by_master in signals:
        if logical in skip:
            continue
        width = _width(spec, w)
        if width == 0:
            continue
        phys = prefix + (logical.lower() if lower else logical)
        vec = width if (width > 1 or logical in vectors) else None
        ports.append(Port(phys, out=(by_master == master), width=vec))
        portmap.append((logical, phys))
    return ports, sorted(portmap)


def aximm_params(protocol: str, w: Dict[str, int], clk_domain: str, **extra) -> List[Tuple[str, str]]:
    """The bus interface parameters Vivado writes for an AXI memory-mapped interface (the usual subset)."""
    full = protocol == "AXI4"
    params = [
        ("DATA_WIDTH", str(w["data"])), ("PROTOCOL", protocol), ("FREQ_HZ", str(PL_CLK_HZ)),
        ("ID_WIDTH", str(w.get("id", 0) if full else 0)), ("ADDR_WIDTH", str(w["addr"])),
        ("AWUSER_WIDTH", str(w.get("user", 0))), ("ARUSER_WIDTH", str(w.get("user", 0))),
        ("WUSER_WIDTH", "0"), ("RUSER_WIDTH", "0"), ("BUSER_WIDTH", "0"), ("READ_WRITE_MODE", "READ_WRITE"),
        ("HAS_BURST", "1" if full else "0"), ("HAS_LOCK", "1" if full else "0"),
        ("HAS_PROT", extra.pop("has_prot", "1")), ("HAS_CACHE", "1" if full else "0"),
        ("HAS_QOS", extra.pop("has_qos", "1" if full else "0")), ("HAS_REGION", "0"), ("HAS_WSTRB", "1"),
        ("HAS_BRESP", "1"), ("HAS_RRESP", "1"), ("SUPPORTS_NARROW_BURST", "1" if full else "0"),
        ("MAX_BURST_LENGTH", "256" if full else "1"), ("PHASE", "0.000"), ("CLK_DOMAIN", clk_domain),
        ("INSERT_VIP", "0"),
    ]
    return params + [(k.upper(), str(v)) for k, v in extra.items()]


def _xml_registers(registers: Sequence[Tuple[str, int, str, str]]) -> str:
    rows = []
    for name, offset, access, doc in registers:
        rows.append(f'            <REGISTER NAME="{name}">\n'
                    f'              <PROPERTY NAME="DESCRIPTION" VALUE={quoteattr(doc)}/>\n'
                    f'              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="0x{offset:X}"/>\n'
                    f'              <PROPERTY NAME="SIZE" VALUE="32"/>\n'
                    f'              <PROPERTY NAME="ACCESS" VALUE="{access}"/>\n'
                    f'              <PROPERTY NAME="IS_ENABLED" VALUE="true"/>\n'
                    f'              <PROPERTY NAME="RESET_VALUE" VALUE="0x0"/>\n'
                    f'            </REGISTER>')
    return "\n".join(rows)


# axi_intc 4.1 registers (PG099), as Vivado lists them for the controller (fields left out).
INTC_REGISTERS = [
    ("ISR", 0x00, "read-write", "Interrupt Status Register"),
    ("IPR", 0x04, "read-only", "Interrupt Pending Register"),
    ("IER", 0x08, "read-write", "Interrupt Enable Register"),
    ("IAR", 0x0C, "write-only", "Interrupt Acknowledge Register"),
    ("SIE", 0x10, "read-write", "Set Interrupt Enables"),
    ("CIE", 0x14, "read-write", "Clear Interrupt Enables"),
    ("IVR", 0x18, "read-only", "Interrupt Vector Register"),
    ("MER", 0x1C, "read-write", "Master Enable Register"),
    ("IMR", 0x20, "read-write", "Interrupt Mode Register"),
    ("ILR", 0x24, "read-write", "Interrupt Level Register"),
]


def _addressblock(interface: str, name: str, range_: int, registers: str = "") -> str:
    head = (f'        <ADDRESSBLOCK ACCESS="read-write" INTERFACE="{interface}" NAME="{name}" RANGE="{range_}" '
            f'USAGE="register"')
    if not registers:
        return head + "/>"
    return f"{head}>\n          <REGISTERS>\n{registers}\n          </REGISTERS>\n        </ADDRESSBLOCK>"


def _memrange(block: str, base: int, size: int, instance: str, slave: str, master: Optional[str],
              memtype: str, is_instruction: bool = True) -> Dict[str, str]:
    m = {"ADDRESSBLOCK": block, "BASENAME": "C_BASEADDR", "BASEVALUE": f"0x{base:08X}", "HIGHNAME": "C_HIGHADDR",
         "HIGHVALUE": f"0x{base + size - 1:08X}", "INSTANCE": instance, "IS_DATA": "TRUE",
         "IS_INSTRUCTION": "TRUE" if is_instruction else "FALSE"}
    if master:
        m["MASTERBUSINTERFACE"] = master
    m.update({"MEMTYPE": memtype, "SLAVEBUSINTERFACE": slave})
    return m


# What the core's master reaches through S_AXI_HP0_FPD: the segments assign_bd_address maps for an HP port of the
# ZCU104 preset (the real base.hwh lists these three for its HP2 masters).
HP0_SEGMENTS = [("HP0_DDR_LOW", 0x0000_0000, 0x8000_0000, "MEMORY"),
                ("HP0_QSPI", 0xC000_0000, 0x2000_0000, "MEMORY"),
                ("HP0_LPS_OCM", 0xFF00_0000, 0x0100_0000, "REGISTER")]


# The nets of block_design.tcl: connect_bd_net (name, [driver, sinks...]) and connect_bd_intf_net ((master cell,
# interface), (slave cell, interface)). Net names as Vivado derives them (driver cell _ pin).
NETS: List[Tuple[str, List[Tuple[str, str]]]] = [
    (f"{PS_NAME}_pl_clk0", [(PS_NAME, "pl_clk0"), (PS_NAME, "maxihpm0_fpd_aclk"), (PS_NAME, "saxihp0_fpd_aclk"),
                            (SMC_CTRL, "aclk"), (SMC_DDR, "aclk"), (RESET_NAME, "slowest_sync_clk"),
                            (INTC_NAME, "s_axi_aclk"), (CORE_NAME, "clk_i")]),
    (f"{PS_NAME}_pl_resetn0", [(PS_NAME, "pl_resetn0"), (RESET_NAME, "ext_reset_in")]),
    (f"{RESET_NAME}_interconnect_aresetn", [(RESET_NAME, "interconnect_aresetn"), (SMC_CTRL, "aresetn"),
                                            (SMC_DDR, "aresetn")]),
    (f"{RESET_NAME}_peripheral_aresetn", [(RESET_NAME, "peripheral_aresetn"), (CORE_NAME, "rst_ni"),
                                          (INTC_NAME, "s_axi_aresetn")]),
    (f"{CORE_NAME}_irq_o", [(CORE_NAME, "irq_o"), (IRQ_CONCAT, "In0")]),
    (f"{IRQ_CONCAT}_dout", [(IRQ_CONCAT, "dout"), (INTC_NAME, "intr")]),
    (f"{INTC_NAME}_irq", [(INTC_NAME, "irq"), (PS_NAME, "pl_ps_irq0")]),
]
INTERFACE_NETS: List[Tuple[Tuple[str, str], Tuple[str, str]]] = [
    ((PS_NAME, "M_AXI_HPM0_FPD"), (SMC_CTRL, "S00_AXI")),
    ((SMC_CTRL, "M00_AXI"), (CORE_NAME, "s_axil")),
    ((SMC_CTRL, "M01_AXI"), (INTC_NAME, "s_axi")),
    ((CORE_NAME, "m_axi"), (SMC_DDR, "S00_AXI")),
    ((SMC_DDR, "M00_AXI"), (PS_NAME, "S_AXI_HP0_FPD")),
]


def design(hw: HwConfig) -> Tuple[List[Cell], List[Tuple[str, List[Tuple[str, str]]]]]:
    """The block design's cells and its nets [(net, [(cell, port), ...])], driver first."""
    bd = f"{DESIGN_PREFIX}{hw.name}"
    clk_domain = f"{bd}_{PS_NAME}_0_pl_clk0"
    data = hw.axi_data_bits
    core_lite = {"addr": 8, "data": 32, "strb": 4}
    core_full = {"addr": 40, "data": data, "strb": data // 8, "id": 1, "user": 0}
    intc_lite = {"addr": 9, "data": 32, "strb": 4}
    hpm0 = {"addr": 40, "data": 32, "strb": 4, "id": 16, "user": 16}
    hp0 = {"addr": 49, "data": data, "strb": data // 8, "id": 6, "user": 1}

    def clk(name: str) -> Port:
        return Port(name, out=False, sigis="clk", attrs={"CLKFREQUENCY": str(PL_CLK_HZ)})

    def rst(name: str, out: bool = False, width: Optional[int] = None) -> Port:
        return Port(name, out=out, width=width, sigis="rst")

    # -- sps_core_0 (the packaged sps_ip_top) --
    s_ports, s_map = axi_ports("s_axil_", AXI4_LITE, master=False, w=core_lite)
    m_ports, m_map = axi_ports("m_axi_", AXI4, master=True, w=core_full, skip=NO_QOS_USER,
                               vectors=("AWID", "BID", "ARID", "RID"))
    core = Cell(CORE_NAME, CORE_VLNV, "PERIPHERAL", params=[
        ("Rows", str(hw.rows)), ("Cols", str(hw.cols)), ("AxiDataWidth", str(data)),
        ("ActBufBytes", str(hw.act_buf_bytes)), ("WeightBufBytes", str(hw.weight_buf_bytes)),
        ("Component_Name", f"{bd}_{CORE_NAME}_0"), ("EDK_IPTYPE", "PERIPHERAL"),
        ("C_BASEADDR", f"0x{CORE_BASE:08X}"), ("C_HIGHADDR", f"0x{CORE_BASE + CORE_RANGE - 1:08X}")],
        ports=[clk("clk_i"), rst("rst_ni")] + s_ports + m_ports
        + [Port("irq_o", out=True, sigis="INTERRUPT", attrs={"SENSITIVITY": "LEVEL_HIGH"})],
        busifs=[BusIf("s_axil", False, aximm_params("AXI4LITE", core_lite, clk_domain), s_map, 32),
                BusIf("m_axi", True, aximm_params("AXI4", core_full, clk_domain, has_qos="0"), m_map, data)],
        memranges=[_memrange(b, base, size, PS_NAME, "S_AXI_HP0_FPD", "m_axi", t) for b, base, size, t in HP0_SEGMENTS],
        addressblocks=[_addressblock("s_axil", REG_BLOCK, CORE_RANGE)])

    # -- axi_intc_0 --
    i_ports, i_map = axi_ports("s_axi_", AXI4_LITE, master=False, w=intc_lite, skip=NO_PROT)
    intc = Cell(INTC_NAME, "xilinx.com:ip:axi_intc:4.1", "INTERRUPT_CNTLR", params=[
        ("C_FAMILY", "zynquplus"), ("C_INSTANCE", f"{bd}_{INTC_NAME}_0"), ("C_S_AXI_ADDR_WIDTH", "9"),
        ("C_S_AXI_DATA_WIDTH", "32"), ("C_NUM_INTR_INPUTS", "1"), ("C_NUM_SW_INTR", "0"),
        ("C_KIND_OF_INTR", "0xFFFFFFFE"), ("C_KIND_OF_EDGE", "0xFFFFFFFF"), ("C_KIND_OF_LVL", "0xFFFFFFFF"),
        ("C_ASYNC_INTR", "0xFFFFFFFE"), ("C_NUM_SYNC_FF", "2"), ("C_ADDR_WIDTH", "32"),
        ("C_IVAR_RESET_VALUE", "0x0000000000000010"), ("C_ENABLE_ASYNC", "0"), ("C_HAS_IPR", "1"),
        ("C_HAS_SIE", "1"), ("C_HAS_CIE", "1"), ("C_HAS_IVR", "1"), ("C_HAS_ILR", "0"), ("C_IRQ_IS_LEVEL", "1"),
        ("C_IRQ_ACTIVE", "0x1"), ("C_DISABLE_SYNCHRONIZERS", "0"), ("C_MB_CLK_NOT_CONNECTED", "1"),
        ("C_HAS_FAST", "0"), ("C_EN_CASCADE_MODE", "0"), ("C_CASCADE_MASTER", "0"),
        ("Component_Name", f"{bd}_{INTC_NAME}_0"), ("Sense_of_IRQ_Level_Type", "Active_High"),
        ("Sense_of_IRQ_Edge_Type", "Rising"), ("C_S_AXI_ACLK_FREQ_MHZ", f"{PL_CLK_ACT_MHZ:.6f}"),
        ("C_PROCESSOR_CLK_FREQ_MHZ", "100.0"), ("C_IRQ_CONNECTION", "1"), ("EDK_IPTYPE", "PERIPHERAL"),
        ("EDK_SPECIAL", "INTR_CTRL"), ("C_BASEADDR", f"0x{INTC_BASE:08X}"),
        ("C_HIGHADDR", f"0x{INTC_BASE + INTC_RANGE - 1:08X}")],
        ports=[clk("s_axi_aclk"), rst("s_axi_aresetn")] + i_ports + [
            Port("intr", out=False, width=1, sigis="INTERRUPT", attrs={"SENSITIVITY": "LEVEL_HIGH"}),
            Port("irq", out=True, sigis="INTERRUPT", attrs={"SENSITIVITY": "LEVEL_HIGH"})],
        busifs=[BusIf("s_axi", False, aximm_params("AXI4LITE", intc_lite, clk_domain, has_prot="0"), i_map, 32)],
        addressblocks=[_addressblock("S_AXI", "Reg", 4096, _xml_registers(INTC_REGISTERS))],
        document="http://www.xilinx.com/cgi-bin/docs/ipdoc?c=axi_intc;v=v4_1;d=pg099-axi-intc.pdf")

    # -- irq_concat (xlconcat, one input) --
    concat = Cell(IRQ_CONCAT, "xilinx.com:ip:xlconcat:2.1", "PERIPHERAL",
                  params=[(f"IN{i}_WIDTH", "1") for i in range(32)] + [
                      ("dout_width", "1"), ("NUM_PORTS", "1"), ("Component_Name", f"{bd}_{IRQ_CONCAT}_0"),
                      ("EDK_IPTYPE", "PERIPHERAL")],
                  ports=[Port("In0", out=False, width=1), Port("dout", out=True, width=1)])

    # -- SmartConnects (hierarchical IP: Vivado writes them as one MODULE with BDTYPE="SBD") --
    def smartconnect(name: str, slaves: List[Tuple[str, Dict[str, int], list, Sequence[str]]],
                     masters: List[Tuple[str, Dict[str, int], list, Sequence[str]]]) -> Cell:
        cell = Cell(name, "xilinx.com:ip:smartconnect:1.0", "BUS", params=[
            ("NUM_MI", str(len(masters))), ("NUM_SI", str(len(slaves))), ("NUM_CLKS", "1"),
            ("HAS_ARESETN", "1"), ("Component_Name", f"{bd}_{name}_0")],
            ports=[Port("aclk", out=False, sigis="clk", attrs={"CLKFREQUENCY": str(PL_CLK_HZ)}),
                   rst("aresetn")],
            head={"BD": f"{bd}_{name}_0", "BDTYPE": "SBD", "DRIVERMODE": "CORE", "SIM_BD": f"{bd}_{name}_0"})
        for is_master, group in ((False, slaves), (True, masters)):
            for busname, w, signals, skip in group:
                ports, pmap = axi_ports(f"{busname}_", signals, master=is_master, w=w, skip=skip,
                                        vectors=("AWID", "BID", "ARID", "RID"))
                cell.ports += ports
                protocol = "AXI4" if signals is AXI4 else "AXI4LITE"
                cell.busifs.append(BusIf(busname, is_master, aximm_params(protocol, w, clk_domain), pmap, w["data"]))
        return cell

    smc_ctrl = smartconnect(SMC_CTRL, slaves=[("S00_AXI", hpm0, AXI4, ())],
                            masters=[("M00_AXI", core_lite, AXI4_LITE, ()),
                                     ("M01_AXI", intc_lite, AXI4_LITE, NO_PROT)])
    smc_ddr = smartconnect(SMC_DDR, slaves=[("S00_AXI", core_full, AXI4, NO_QOS_USER)],
                           masters=[("M00_AXI", hp0, AXI4, ())])

    # -- proc_sys_reset_0 --
    reset = Cell(RESET_NAME, "xilinx.com:ip:proc_sys_reset:5.0", "PERIPHERAL", params=[
        ("C_FAMILY", "zynquplus"), ("C_EXT_RST_WIDTH", "4"), ("C_AUX_RST_WIDTH", "4"), ("C_EXT_RESET_HIGH", "0"),
        ("C_AUX_RESET_HIGH", "0"), ("C_NUM_BUS_RST", "1"), ("C_NUM_PERP_RST", "1"),
        ("C_NUM_INTERCONNECT_ARESETN", "1"), ("C_NUM_PERP_ARESETN", "1"),
        ("Component_Name", f"{bd}_{RESET_NAME}_0"), ("EDK_IPTYPE", "PERIPHERAL")],
        ports=[clk("slowest_sync_clk"), rst("ext_reset_in"), rst("aux_reset_in"), rst("mb_debug_sys_rst"),
               Port("dcm_locked", out=False), rst("mb_reset", out=True), rst("bus_struct_reset", True, 1),
               rst("peripheral_reset", True, 1), rst("interconnect_aresetn", True, 1),
               rst("peripheral_aresetn", True, 1)],
        document="http://www.xilinx.com/cgi-bin/docs/ipdoc?c=proc_sys_reset;v=v5_0;d=pg164-proc-sys-reset.pdf")

    # -- the PS: its AXI ports are plain ports (Vivado writes no port maps for the PS's bus interfaces) --
    gp0_ports, _ = axi_ports("maxigp0_", AXI4, master=True, w=hpm0)
    hp0_ports, _ = axi_ports("saxigp2_", AXI4, master=False, w=hp0)
    ps = Cell(PS_NAME, "xilinx.com:ip:zynq_ultra_ps_e:3.5", "", params=_ps_params(data),
              ports=[clk("maxihpm0_fpd_aclk")] + gp0_ports + [clk("saxihp0_fpd_aclk")] + hp0_ports + [
                  Port("pl_ps_irq0", out=False, width=1, sigis="INTERRUPT", attrs={"SENSITIVITY": "LEVEL_HIGH"}),
                  rst("pl_resetn0", out=True),
                  Port("pl_clk0", out=True, sigis="clk", attrs={"CLKFREQUENCY": str(PL_CLK_HZ)})],
              busifs=[BusIf("M_AXI_HPM0_FPD", True, aximm_params("AXI4", hpm0, clk_domain), [], 32),
                      BusIf("S_AXI_HP0_FPD", False, aximm_params("AXI4", hp0, clk_domain), [], data)],
              memranges=[_memrange(REG_BLOCK, CORE_BASE, CORE_RANGE, CORE_NAME, "s_axil", "M_AXI_HPM0_FPD",
                                   "REGISTER"),
                         _memrange("Reg", INTC_BASE, INTC_RANGE, INTC_NAME, "s_axi", "M_AXI_HPM0_FPD", "REGISTER")],
              head={"CONFIGURABLE": "TRUE", "IS_PL": "FALSE"},
              document="http://www.xilinx.com/cgi-bin/docs/ipdoc?c=zynq_ultra_ps_e;v=v3_5;"
                       "d=pg201-zynq-ultrascale-plus-processing-system.pdf")

    cells = [intc, core, concat, ps, reset, smc_ctrl, smc_ddr]

    by_name = {c.name: c for c in cells}
    return cells, list(NETS) + _interface_nets(by_name, INTERFACE_NETS)


# The PS's axi ports by bus interface, for wiring interface nets to its plain ports.
PS_AXI_PREFIX = {"M_AXI_HPM0_FPD": "maxigp0_", "S_AXI_HP0_FPD": "saxigp2_"}


def _physical(cell: Cell, busif: str) -> Dict[str, str]:
    """LOGICAL -> physical port of a bus interface (the PS's from its port prefix)."""
    b = next(b for b in cell.busifs if b.name == busif)
    if b.portmap:
        return dict(b.portmap)
    prefix = PS_AXI_PREFIX[busif]
    return {p.name[len(prefix):].upper(): p.name for p in cell.ports if p.name.startswith(prefix)}


def _interface_nets(cells: Dict[str, Cell], intf_nets) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """One net per signal of each interface connection, named after the slave's port (as Vivado names them); the
    bus interfaces' BUSNAME is the master's `<cell>_<interface>`."""
    nets = []
    for (mc, mb), (sc, sb) in intf_nets:
        master, slave = _physical(cells[mc], mb), _physical(cells[sc], sb)
        busname = f"{mc}_{mb}"
        for cell, b in ((cells[mc], mb), (cells[sc], sb)):
            next(x for x in cell.busifs if x.name == b).busname = busname
        for logical in sorted(set(master) & set(slave)):
            m_port = cells[mc].port(master[logical])
            driver, other = ((mc, master[logical]), (sc, slave[logical])) if m_port.out else \
                ((sc, slave[logical]), (mc, master[logical]))
            nets.append((f"{sc}_{slave[logical]}", [driver, other]))
    return nets


def _ps_params(axi_bits: int) -> List[Tuple[str, str]]:
    """The PS parameters PYNQ reads (port widths, PL clocks, their PLL) and a few that identify the preset."""
    params = [("C_MAXIGP0_DATA_WIDTH", "32"), ("C_SAXIGP2_DATA_WIDTH", str(axi_bits)),
              ("PSU__USE__M_AXI_GP0", "1"), ("PSU__MAXIGP0__DATA_WIDTH", "32"), ("PSU__USE__M_AXI_GP1", "0"),
              ("PSU__USE__M_AXI_GP2", "0"), ("PSU__USE__S_AXI_GP2", "1"), ("PSU__SAXIGP2__DATA_WIDTH", str(axi_bits)),
              ("PSU__USE__IRQ0", "1"), ("PSU__USE__IRQ1", "0"), ("PSU__PSS_REF_CLK__FREQMHZ", f"{PSS_REF_CLK_MHZ}"),
              ("PSU__CRL_APB__IOPLL_CTRL__FBDIV", str(IOPLL_FBDIV)),
              ("PSU__CRL_APB__IOPLL_CTRL__DIV2", str(IOPLL_DIV2)),
              ("PSU__CRL_APB__IOPLL_CTRL__FRACDATA", "0.000000"), ("PSU__CRL_APB__IOPLL_FRAC_CFG__ENABLED", "0"),
              ("PSU__CRL_APB__IOPLL_CTRL__SRCSEL", "PSS_REF_CLK"),
              ("PSU__CRL_APB__RPLL_CTRL__FBDIV", "90"), ("PSU__CRL_APB__RPLL_CTRL__DIV2", "1"),
              ("PSU__CRL_APB__RPLL_CTRL__FRACDATA", "0.000000"), ("PSU__CRL_APB__RPLL_FRAC_CFG__ENABLED", "0"),
              ("PSU__CRL_APB__RPLL_CTRL__SRCSEL", "PSS_REF_CLK")]
    for i in range(4):
        on = i == 0
        div0 = PL0_DIVISORS[0] if on else 15
        params += [(f"PSU__FPGA_PL{i}_ENABLE", "1" if on else "0"),
                   (f"PSU__CRL_APB__PL{i}_REF_CTRL__SRCSEL", "IOPLL"),
                   (f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0", str(div0)),
                   (f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1", "1"),
                   (f"PSU__CRL_APB__PL{i}_REF_CTRL__FREQMHZ", str(PL_CLK_MHZ) if on else "100"),
                   (f"PSU__CRL_APB__PL{i}_REF_CTRL__ACT_FREQMHZ",
                    f"{PL_CLK_ACT_MHZ:.6f}" if on else f"{round(_float32(IOPLL_MHZ / div0), 6):.6f}")]
    return params


# -- XML ---------------------------------------------------------------------------------------------------------
def _attrs(d: Dict[str, str]) -> str:
    return " ".join(f"{k}={quoteattr(v)}" for k, v in sorted(d.items()))


def _module_xml(cell: Cell, links: Dict[Tuple[str, str], Tuple[str, List[Tuple[str, str]]]]) -> str:
    head = {"COREREVISION": "1", "FULLNAME": f"/{cell.name}", "HWVERSION": cell.vlnv.split(":")[3],
            "INSTANCE": cell.name, "IPTYPE": "BUS" if cell.modclass == "BUS" else "PERIPHERAL", "IS_ENABLE": "1",
            "MODTYPE": cell.modtype, "VLNV": cell.vlnv}
    if cell.modclass:
        head["MODCLASS"] = cell.modclass
    head.update(cell.head)
    out = [f"    <MODULE {_attrs(head)}>"]
    if cell.document:
        out += ["      <DOCUMENTS>", f'        <DOCUMENT SOURCE={quoteattr(cell.document)}/>', "      </DOCUMENTS>"]
    else:
        out.append("      <DOCUMENTS/>")
    if cell.addressblocks:
        out += ["      <ADDRESSBLOCKS>"] + cell.addressblocks + ["      </ADDRESSBLOCKS>"]
    out.append("      <PARAMETERS>")
    out += [f'        <PARAMETER NAME="{k}" VALUE={quoteattr(v)}/>' for k, v in cell.params]
    out.append("      </PARAMETERS>")
    out.append("      <PORTS>")
    for p in cell.ports:
        attrs = {"DIR": "O" if p.out else "I", "NAME": p.name, "SIGIS": p.sigis, **p.attrs}
        if p.width is not None:
            attrs.update(LEFT=str(p.width - 1), RIGHT="0")
        link = links.get((cell.name, p.name))
        if link is None:
            out.append(f"        <PORT {_attrs(attrs)}/>")
            continue
        net, others = link
        attrs["SIGNAME"] = net
        out.append(f"        <PORT {_attrs(attrs)}>")
        out.append("          <CONNECTIONS>")
        out += [f'            <CONNECTION INSTANCE="{c}" PORT="{q}"/>' for c, q in others]
        out.append("          </CONNECTIONS>")
        out.append("        </PORT>")
    out.append("      </PORTS>")
    out.append("      <BUSINTERFACES>")
    for b in cell.busifs:
        battrs = {"BUSNAME": b.busname or "__NOC__", "NAME": b.name,
                  "TYPE": "MASTER" if b.master else "SLAVE", "VLNV": b.vlnv}
        if b.datawidth:
            battrs["DATAWIDTH"] = str(b.datawidth)
        out.append(f"        <BUSINTERFACE {_attrs(battrs)}>")
        out += [f'          <PARAMETER NAME="{k}" VALUE={quoteattr(v)}/>' for k, v in b.params]
        if b.portmap:
            out.append("          <PORTMAPS>")
            out += [f'            <PORTMAP LOGICAL="{lg}" PHYSICAL="{ph}"/>' for lg, ph in b.portmap]
            out.append("          </PORTMAPS>")
        out.append("        </BUSINTERFACE>")
    out.append("      </BUSINTERFACES>")
    if cell.memranges:
        out.append("      <MEMORYMAP>")
        out += [f"        <MEMRANGE {_attrs(m)}/>" for m in cell.memranges]
        out.append("      </MEMORYMAP>")
    out.append("    </MODULE>")
    return "\n".join(out)


def hwh_text(hw: HwConfig) -> str:
    """The virtual block design as a .hwh (the XML pynq parses)."""
    cells, nets = design(hw)
    links: Dict[Tuple[str, str], Tuple[str, List[Tuple[str, str]]]] = {}
    for net, (driver, *sinks) in nets:           # as Vivado writes it: the driver lists every sink, a sink its driver
        links[driver] = (net, sinks)
        for pin in sinks:
            links[pin] = (net, [driver])
    modules = "\n".join(_module_xml(c, links) for c in sorted(cells, key=lambda c: c.name))
    return f'''<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<!-- VIRTUAL overlay generated by sps_pynq.virtual_board.overlay for the virtual ZCU104 test server.
     It was NOT produced by Vivado and configures no FPGA. Hardware configuration: {hw.describe()}.
     The real overlay (overlays/zcu104/sps.hwh) comes from the Vivado scripts in hw_src/vivado. -->
<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="virtual" VIVADOVERSION="none (virtual overlay)">

  <SYSTEMINFO ARCH="zynquplus" BOARD="xilinx.com:zcu104:part0:1.1" DEVICE="xczu7ev" NAME="{DESIGN_PREFIX}{hw.name}" PACKAGE="ffvc1156" SPEEDGRADE="-2"/>

  <EXTERNALPORTS/>

  <EXTERNALINTERFACES/>

  <MODULES>
{modules}
  </MODULES>

</EDKSYSTEM>
'''


def bit_bytes(hw: HwConfig) -> bytes:
    """A file with a valid .bit header whose payload names the HwConfig to model (it configures no FPGA).

    The payload also carries the digest of the .hwh beside it: pynq caches an overlay's parsed metadata under the
    hash of the .bit alone (pl_server/global_state.py), so a .hwh regenerated without a new .bit would be read
    from that cache, stale."""
    info = {"virtual": True, "hw": hw.to_dict(), "hwh_sha256": hashlib.sha256(hwh_text(hw).encode()).hexdigest()}
    payload = PAYLOAD_MAGIC + json.dumps(info, sort_keys=True).encode()
    payload += bytes(-len(payload) % 4)       # pynq byte-swaps 32-bit words to make the .bin

    def field_(key: int, text: str) -> bytes:
        data = text.encode("ascii") + b"\0"
        return bytes([key]) + struct.pack(">h", len(data)) + data

    header = struct.pack(">h", 9) + bytes.fromhex("0ff00ff00ff00ff000") + struct.pack(">h", 1)
    header += field_(0x61, f"{DESIGN_PREFIX}{hw.name};VIRTUAL=not a bitstream;Version=sps-pynq virtual")
    header += field_(0x62, "xczu7ev-ffvc1156-2-e") + field_(0x63, "virtual") + field_(0x64, "virtual")
    return header + b"\x65" + struct.pack(">i", len(payload)) + payload


def config_from_bin(data: bytes) -> Optional[HwConfig]:
    """The HwConfig named by the .bin pynq made from a virtual .bit (None for anything else)."""
    if len(data) % 4:
        return None
    swapped = b"".join(data[i:i + 4][::-1] for i in range(0, len(data), 4))
    if not swapped.startswith(PAYLOAD_MAGIC):
        return None
    try:
        info = json.loads(swapped[len(PAYLOAD_MAGIC):].rstrip(b"\0").decode())
        return HwConfig.from_dict(info["hw"])
    except (ValueError, KeyError, TypeError):
        return None


def write_overlay(folder, hw: "str | HwConfig" = "zcu104") -> Tuple[Path, Path]:
    """Write sps.bit and sps.hwh for `hw` into `folder`; returns their paths. Unchanged files are not rewritten."""
    hw = get_config(hw)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bit, hwh = folder / "sps.bit", folder / "sps.hwh"
    for path, data in ((bit, bit_bytes(hw)), (hwh, hwh_text(hw).encode())):
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    return bit, hwh


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write the virtual ZCU104 overlay files (not from Vivado).")
    p.add_argument("--hw", default="zcu104", choices=sorted(CONFIGS))
    p.add_argument("--out", default=str(REPO_OVERLAY))
    args = p.parse_args(argv)
    for path in write_overlay(args.out, args.hw):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
