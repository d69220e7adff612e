"""The notebooks in sps_pynq/notebooks, stored without outputs and executed headless (nbclient, an ipykernel) against
the virtual ZCU104 on loopback, the overlay found by name through pynq (no $SPS_PYNQ_OVERLAY)."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("pynq")
pytest.importorskip("grpc")

from sps_pynq import demo, model_file  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "sps_pynq" / "notebooks"


@pytest.fixture
def virtual_board(monkeypatch):
    from sps_pynq.virtual_board.server import VirtualBoard
    with VirtualBoard(host="127.0.0.1", port=0) as vb:
        monkeypatch.setenv("SPS_PYNQ_REMOTE", vb.address)          # the kernel inherits this environment
        monkeypatch.delenv("SPS_PYNQ_OVERLAY", raising=False)
        monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        yield vb


def execute(name: str, cwd: Path, **params):
    """The notebook run top to bottom in a fresh kernel, with `params` set after its parameters cell."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "".join(f"\n{k} = {v!r}" for k, v in params.items())
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def text_of(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if o.output_type == "stream")


def images_in(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("name", ["sps_digits.ipynb", "sps_energy.ipynb"])
def test_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


def test_digits_notebook_on_the_virtual_board(virtual_board, tmp_path):
    nb = execute("sps_digits.ipynb", tmp_path)
    out = text_of(nb)
    rec = demo.recorded(model_file.load(demo.MODEL))
    correct = round(rec["digits_accuracy"] * 2)
    assert f"accuracy: {correct}/200" in out
    assert "Session(" in out and "'board'" in out and "digits/s on board" in out
    assert "whole run:" in out and "MAC-active" in out and "virtual board" in out    # modelled counters, said so
    assert "first four:" in out
    assert images_in(nb) >= 3                      # the digits, the predictions, the per-layer counters


def test_energy_notebook_on_the_virtual_board(virtual_board, tmp_path):
    nb = execute("sps_energy.ipynb", tmp_path, SECONDS=0.3)
    out = text_of(nb)
    assert "SPS PPS(8,4):" in out and "dense:" in out
    assert out.count("power: unavailable (the virtual board has no power rails") == 2
    assert "energy: unavailable" in out and "mJ/inference" not in out
    assert "latency: dense / SPS" in out
    assert images_in(nb) == 1                      # the trace: latency over the windows, and why there is no power
