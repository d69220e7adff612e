"""What `pip install` gives: the overlays, notebooks and demo inside the package, pynq's entry points, the
metadata `pip show` prints; and the overlay found by name through pynq (no $SPS_PYNQ_OVERLAY).

.ci/run also installs the project non-editable into a fresh venv and runs the demo and the self-test on the
virtual board from a folder outside the repository, without any overlay variable."""
import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sps_pynq.backends.board import discovery
from sps_pynq.errors import BackendError

ROOT = Path(__file__).resolve().parents[1]


def test_virtual_overlay_is_found_by_name_through_pynq(monkeypatch):
    pytest.importorskip("pynq")
    monkeypatch.delenv("SPS_PYNQ_OVERLAY", raising=False)
    bit = discovery.find_overlay(boards=("virtual_zcu104",))
    assert bit is not None and bit.name == "sps.bit" and bit.parent.name == "virtual_zcu104"
    assert bit.with_suffix(".hwh").is_file()
    assert discovery.resolve_overlay("no_such_board") is None
    import sps_pynq.overlays
    assert Path(sps_pynq.overlays.__path__[0]).resolve() == bit.parent.parent


def test_overlay_variable_overrides_and_a_wrong_one_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "sps.bit").write_bytes(b"x")
    (tmp_path / "sps.hwh").write_text("<x/>")
    monkeypatch.setenv("SPS_PYNQ_OVERLAY", str(tmp_path))
    assert discovery.find_overlay() == (tmp_path / "sps.bit").resolve()
    monkeypatch.setenv("SPS_PYNQ_OVERLAY", str(tmp_path / "nothing"))
    with pytest.raises(BackendError, match="SPS_PYNQ_OVERLAY"):
        discovery.find_overlay()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel pip builds, from a copy of the sources (an in-tree build would leave build/ and *.egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "_build", "*.pyc", "*.so")
    shutil.copytree(ROOT / "sps_pynq", src / "sps_pynq", ignore=ignore)
    shutil.copytree(ROOT / "overlays", src / "overlays", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("sps_pynq-*.whl")
    return whl


def test_wheel_holds_overlays_notebooks_demo_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = z.read(f"{dist}/entry_points.txt").decode()
        meta = email.message_from_bytes(z.read(f"{dist}/METADATA"))
    for name in ("sps_pynq/overlays/__init__.py", "sps_pynq/overlays/virtual_zcu104/sps.bit",
                 "sps_pynq/overlays/virtual_zcu104/sps.hwh", "sps_pynq/notebooks/__init__.py",
                 "sps_pynq/notebooks/sps_digits.ipynb", "sps_pynq/notebooks/sps_energy.ipynb",
                 "sps_pynq/demo/__init__.py", "sps_pynq/demo/mnist_pps84.spsmodel",
                 "sps_pynq/demo/mnist_dense.spsmodel", "sps_pynq/demo/mnist_digits.npz",
                 "sps_pynq/testing/layers.py", "sps_pynq/testing/selftest.py", "sps_pynq/commands/selftest.py",
                 "sps_pynq/native/golden.c", "sps_pynq/native/golden.h"):
        assert name in names, name
    assert any(n.endswith("/LICENSE") for n in names if ".dist-info/" in n)
    assert "[pynq.overlays]\nsps_pynq = sps_pynq.overlays" in entry_points
    assert "[pynq.notebooks]\nsps_pynq = sps_pynq.notebooks" in entry_points
    assert "sps-pynq = sps_pynq.cli:main" in entry_points
    assert "Apache" in (meta.get("License-Expression") or meta.get("License") or "")
    assert meta["Requires-Python"] == ">=3.10" and meta["Description-Content-Type"] == "text/markdown"
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.12" in classifiers and \
        "License :: OSI Approved :: Apache Software License" in classifiers
    assert "sps-pynq" in meta.get_payload()                      # the README as the long description
    big = [n for n in names if n.endswith((".spsmodel", ".npz"))]
    with zipfile.ZipFile(wheel) as z:
        assert sum(z.getinfo(n).file_size for n in big) < 600_000     # the demo: a few hundred KB


def test_pynq_get_notebooks_delivers_both(tmp_path):
    """pynq's own `get-notebooks` finds them through the `pynq.notebooks` entry point (-o: no device here to match
    overlays against)."""
    pytest.importorskip("pynq")
    exe = Path(sys.executable).with_name("pynq-get-notebooks")
    if not exe.exists():
        pytest.skip("pynq's get-notebooks command is not installed next to this Python")
    proc = subprocess.run([str(exe), "sps_pynq", "-o", "-p", str(tmp_path / "nb")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = sorted(p.name for p in (tmp_path / "nb" / "sps_pynq").glob("*.ipynb"))
    assert got == ["sps_digits.ipynb", "sps_energy.ipynb"]
