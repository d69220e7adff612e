"""Progress bars (sps_pynq.progress): drawn on a terminal only, forced on or off by $SPS_PYNQ_PROGRESS."""
import io

import pytest

from sps_pynq import progress as prog


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_when_the_stream_is_no_terminal(monkeypatch):
    monkeypatch.delenv(prog.ENV, raising=False)
    stream = io.StringIO()
    items = range(5)
    assert not prog.enabled(stream)
    assert prog.progress(items, desc="x", stream=stream) is items          # the iterable itself, untouched
    with prog.progress(total=3, stream=stream) as bar:
        bar.update(1)
        bar.set_postfix_str("ok")
    assert stream.getvalue() == ""


def test_on_a_terminal_a_bar_is_drawn(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.delenv(prog.ENV, raising=False)
    stream = Terminal()
    assert prog.enabled(stream)
    assert list(prog.progress(range(4), desc="calibration", stream=stream)) == [0, 1, 2, 3]
    assert "calibration" in stream.getvalue() and "0/4" in stream.getvalue()       # leave=False clears it after


def test_the_variable_forces_it(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setenv(prog.ENV, "0")
    assert not prog.enabled(Terminal())
    monkeypatch.setenv(prog.ENV, "1")
    stream = io.StringIO()
    with prog.progress(total=2, desc="fine-tuning", stream=stream) as bar:
        bar.update(2)
    assert "fine-tuning" in stream.getvalue()


def test_calibration_draws_a_bar_on_a_terminal(monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    import numpy as np
    from sps_pynq.compiler import compile_model
    from sps_pynq.compiler.testing import make_model
    from onnx import helper
    monkeypatch.setenv(prog.ENV, "1")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", [1, 2, 4, 4])], ["y"], {"w": np.ones((4, 2, 3, 3))})
    compile_model(model, pps=None, calib=np.ones((20, 2, 4, 4), np.float32))
    assert "calibration" in capsys.readouterr().err
