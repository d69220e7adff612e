"""ONNX's own backend node tests (shipped in the onnx wheel, onnx/backend/test/data/node/) through `sps-pynq pack`
and the `sim` backend: does the compiler run each one within int8 tolerance, or refuse it with one line?

A case is a node test whose graph uses only the ops of OPS (and Constant) and at least one of them. Its inputs
after the first become initializers (the values of test_data_set_0), the first stays the network input; the model
is packed with `sps-pynq pack --dense --calib <that input>` through the CLI's own entry point (`sps_pynq.cli.main`,
handed in by the caller: the compiler does not import the command line), then run with
`Session(backend="sim")` and compared with the test's expected output. Outcomes:
  runs     the CLI packed it and every output is within TOLERANCE_LSB output LSBs of the expected one;
  refused  the CLI printed one line "sps-pynq pack: error: ..." and exited with 2;
  WRONG    it packed but an output is farther off, or its shape differs;
  BROKEN   anything else: a traceback, several lines, another exit code.
scripts/onnx_node_tests.py prints the table (and writes it into docs/compiler.md); host_tests check that no case
is WRONG or BROKEN.
"""
from __future__ import annotations

import contextlib
import glob
import io
import os
import tempfile
import traceback
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm", "MatMul", "Flatten", "Relu", "Add",
       "BatchNormalization")
TOLERANCE_LSB = 4.0     # |sim - expected| <= 4 * output scale: input, weight and output rounding, a few layers deep


@dataclass
class Outcome:
    case: str                 # node test name, e.g. test_maxpool_2d_ceil
    ops: List[str]            # its ops
    opset: int                # as shipped
    outcome: str              # runs / refused / WRONG / BROKEN
    detail: str               # the refusal line, or the error in output LSBs, or what went wrong
    error_lsb: Optional[float] = None


def node_test_root() -> str:
    import onnx
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")


def cases(root: Optional[str] = None) -> List[str]:
    """Paths of the node tests whose ops are OPS (and Constant) only, sorted by name."""
    import onnx
    root = root or node_test_root()
    out = []
    for d in sorted(glob.glob(os.path.join(root, "test_*"))):
        path = os.path.join(d, "model.onnx")
        if not os.path.isfile(path):
            continue
        ops = {n.op_type for n in onnx.load(path, load_external_data=False).graph.node}
        if ops & set(OPS) and ops <= set(OPS) | {"Constant"}:
            out.append(d)
    return out


def _load_case(case_dir: str):
    """(model with inputs after the first as initializers, first input, expected outputs)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    data = os.path.join(case_dir, "test_data_set_0")

    def read(kind):
        arrays = []
        for k in range(len(glob.glob(os.path.join(data, f"{kind}_*.pb")))):
            t = onnx.TensorProto()
            with open(os.path.join(data, f"{kind}_{k}.pb"), "rb") as f:
                t.ParseFromString(f.read())
            arrays.append(numpy_helper.to_array(t))
        return arrays
    inputs, expected = read("input"), read("output")
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    for vi, value in zip(graph_inputs[1:], inputs[1:]):
        model.graph.initializer.append(numpy_helper.from_array(value, vi.name))
        model.graph.input.remove(vi)
    return model, inputs[0], expected


def run_case(case_dir: str, workdir: str, cli_main: Callable[[List[str]], int]) -> Outcome:
    """Pack one node test with the CLI entry point `cli_main` (--dense) and run it on sim; see the module
    docstring."""
    import onnx
    name = os.path.basename(case_dir)
    model, x, expected = _load_case(case_dir)
    ops = sorted({n.op_type for n in model.graph.node})
    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
    src, out, calib = (os.path.join(workdir, name + ext) for ext in (".onnx", ".spsmodel", ".npy"))
    onnx.save(model, src)
    np.save(calib, x)
    err, std = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            code = cli_main(["pack", src, "-o", out, "--dense", "--calib", calib])
    except BaseException:
        return Outcome(name, ops, opset, "BROKEN", traceback.format_exc().strip().splitlines()[-1])
    lines = [line for line in err.getvalue().strip().splitlines() if line and "warning" not in line]
    if code == 2:
        if len(lines) == 1 and lines[0].startswith("sps-pynq pack: error: "):
            line = lines[0][len("sps-pynq pack: error: "):].replace(src, name + ".onnx")
            return Outcome(name, ops, opset, "refused", line)
        return Outcome(name, ops, opset, "BROKEN", f"exit 2 with {len(lines)} lines: {' | '.join(lines)[:300]}")
    if code != 0:
        return Outcome(name, ops, opset, "BROKEN", f"exit code {code}: {' | '.join(lines)[:300]}")
    return _compare(name, ops, opset, out, x, expected)


def _compare(name, ops, opset, path, x, expected) -> Outcome:
    from ..runtime.session import Session
    try:
        with Session(path, backend="sim") as s:
            got = s.run(x)
            scales = [t.scale for t in s.outputs]
    except BaseException:
        return Outcome(name, ops, opset, "BROKEN", "run: " + traceback.format_exc().strip().splitlines()[-1])
    got = got if isinstance(got, list) else [got]
    if len(got) != len(expected):
        return Outcome(name, ops, opset, "WRONG", f"{len(got)} outputs, expected {len(expected)}")
    worst = 0.0
    for g, want, scale in zip(got, expected, scales):
        if g.size != want.size:
            return Outcome(name, ops, opset, "WRONG", f"output of {g.size} values {list(g.shape)}, expected "
                                                      f"{list(want.shape)}")
        diff = np.abs(g.reshape(want.shape).astype(np.float64) - want.astype(np.float64))
        worst = max(worst, float(diff.max()) / scale if diff.size else 0.0)
    detail = f"max error {worst:.2f} output LSB"
    return Outcome(name, ops, opset, "runs" if worst <= TOLERANCE_LSB else "WRONG", detail, worst)


def run_all(cli_main: Callable[[List[str]], int], root: Optional[str] = None,
            only: str = "") -> List[Outcome]:
    """run_case for every case (whose name contains `only`)."""
    import warnings
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [run_case(d, tmp, cli_main) for d in cases(root) if only in os.path.basename(d)]


def table(outcomes: List[Outcome]) -> str:
    """The markdown table of docs/compiler.md: a summary per op, then one row per case."""
    lines = ["| op | cases | run on sim | refused |", "| --- | --- | --- | --- |"]
    for op in OPS:
        mine = [o for o in outcomes if op in o.ops]
        lines.append(f"| {op} | {len(mine)} | {sum(o.outcome == 'runs' for o in mine)} | "
                     f"{sum(o.outcome == 'refused' for o in mine)} |")
    bad = [o for o in outcomes if o.outcome not in ("runs", "refused")]
    lines += ["", f"{len(outcomes)} cases: {sum(o.outcome == 'runs' for o in outcomes)} run within "
                  f"{TOLERANCE_LSB:g} output LSB, {sum(o.outcome == 'refused' for o in outcomes)} refused with one "
                  f"line, {len(bad)} wrong or broken.", "",
              "| node test | opset | outcome | detail |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        detail = o.detail.split("; supported: ")[0].replace("|", "\\|")
        lines.append(f"| `{o.case}` | {o.opset} | {o.outcome} | {detail} |")
    return "\n".join(lines)
