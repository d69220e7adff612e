"""Every ONNX backend node test shipped in the onnx wheel for the ops the compiler lowers (Conv, MaxPool,
AveragePool, GlobalAveragePool, Gemm, MatMul, Flatten, Relu, Add, BatchNormalization): packed with
`sps-pynq pack --dense` and run on `sim`, or refused with one line (sps_pynq/compiler/node_tests.py says how).

    .venv/bin/python scripts/onnx_node_tests.py              # print the table
    .venv/bin/python scripts/onnx_node_tests.py --write-docs # and put it into docs/compiler.md

Exit status 1 if any case is WRONG or BROKEN.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sps_pynq.cli import main as main_cli  # noqa: E402
from sps_pynq.compiler import node_tests  # noqa: E402

BEGIN = "<!-- onnx-node-tests:begin (scripts/onnx_node_tests.py --write-docs) -->"
END = "<!-- onnx-node-tests:end -->"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write-docs", action="store_true", help="replace the table in docs/compiler.md")
    p.add_argument("-k", metavar="TEXT", help="only cases whose name contains TEXT")
    args = p.parse_args(argv)
    import onnx
    t0 = time.perf_counter()
    outcomes = node_tests.run_all(main_cli, only=args.k or "")
    text = (f"onnx {onnx.__version__}, {len(outcomes)} node tests, packed with --dense for the default "
            f"hardware, {time.perf_counter() - t0:.0f} s\n\n" + node_tests.table(outcomes))
    print(text)
    if args.write_docs:
        path = os.path.join(os.path.dirname(HERE), "docs", "compiler.md")
        with open(path) as f:
            doc = f.read()
        if BEGIN not in doc or END not in doc:
            print(f"{path}: no {BEGIN} ... {END} markers", file=sys.stderr)
            return 2
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(path, "w") as f:
            f.write(head + BEGIN + "\n```\n$ .venv/bin/python scripts/onnx_node_tests.py --write-docs\n```\n"
                    + text + "\n" + END + tail)
    return 1 if any(o.outcome not in ("runs", "refused") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
