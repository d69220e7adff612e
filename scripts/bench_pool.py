#!/usr/bin/env python3
"""Throughput of a BoardPool over 1, 2 and 3 virtual ZCU104s, as ratios to one board measured in one run.

    python scripts/bench_pool.py                              # packs zoo resnet20 PPS(8,4) first (torch)
    python scripts/bench_pool.py --model m.spsmodel --inputs 48 --repeats 3 --run-ms 0 30

Each virtual board is its own `sps-pynq virtual-board` process on a loopback port; this process is the client
(one BoardPool, PYNQ 4's remote protocol). For every --run-ms value, three boards are started with that option
(every run of the virtual core lasts at least that many milliseconds, sleeping: a stand-in for the time the FPGA
would take, which costs the host no CPU); then, repeatedly and interleaved (1, 2, 3, 1, 2, 3, ...), a pool over
the first k boards runs --inputs inputs after a warm-up; the median wall time of each k gives its throughput.

What the numbers mean: the virtual core computes each run with the C golden model on THIS machine's CPU, and the
client spends CPU on every input too (the remote protocol moves the whole arena both ways per run). With
--run-ms 0 the boards and the client share the host's cores, so on a 2-core machine two or three "boards" cannot
run faster than the cores allow: that ratio measures the host, not the pool. With a --run-ms longer than the
host's work per input, a run is mostly the core's modelled time, as on real boards (whose core runs in the
FPGA): that ratio shows how the pool's dispatch scales. Neither is a measurement of a ZCU104.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sps_pynq.runtime.pool import BoardPool  # noqa: E402

OVERLAY = ROOT / "overlays" / "virtual_zcu104"


def start_boards(n: int, run_ms: float, seconds: float):
    """n `sps-pynq virtual-board` processes on free loopback ports: [(process, address)]."""
    boards = []
    try:
        for _ in range(n):
            p = subprocess.Popen([sys.executable, "-m", "sps_pynq", "virtual-board", "--port", "0", "--run-ms",
                                  str(run_ms), "--exit-after", str(seconds)], stdout=subprocess.PIPE, text=True,
                                 cwd=ROOT)
            boards.append(p)
            line = p.stdout.readline()
            if "listening on " not in line:
                raise SystemExit(f"virtual board did not start: {line!r}")
            p.address = line.split("listening on ")[1].split()[0]
    except BaseException:
        stop_boards(boards)
        raise
    return boards


def stop_boards(boards) -> None:
    for p in boards:
        p.terminate()
    for p in boards:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def pack_model(folder: Path) -> Path:
    from sps_pynq.cli import main as cli
    out = folder / "resnet20_pps.spsmodel"
    if cli(["pack", "--model", "resnet20", "--pps", "8x4", "--num-calib", "4", "-o", str(out)]) != 0:
        raise SystemExit("packing resnet20 failed")
    return out


def measure(model: Path, addresses, inputs: int, repeats: int) -> dict:
    """{k: [seconds per repeat]} for pools over the first k boards, interleaved over the repeats."""
    import numpy as np
    pools = {k: BoardPool(model, addresses[:k]) for k in range(1, len(addresses) + 1)}
    try:
        shape = pools[1].program.inputs[0].shape
        x = np.random.default_rng(0).standard_normal((inputs,) + shape).astype(np.float32)
        reference = pools[1].run(x)                     # the warm-up, and the outputs every pool must give
        times = {k: [] for k in pools}
        for _ in range(repeats):
            for k, pool in pools.items():
                pool.run(x[:k])                         # warm-up of this pool's boards
                t0 = time.perf_counter()
                y = pool.run(x)
                times[k].append(time.perf_counter() - t0)
                if not np.array_equal(y, reference):
                    raise SystemExit(f"{k} boards gave other outputs than 1 board")
                if pool.failed:
                    raise SystemExit(f"boards failed: {pool.failed}")
        return times
    finally:
        for pool in pools.values():
            pool.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a .spsmodel packed for zcu104 (default: pack zoo resnet20 --pps 8x4)")
    ap.add_argument("--boards", type=int, default=3, help="up to this many boards (default 3)")
    ap.add_argument("--inputs", type=int, default=48, help="inputs per timed batch (default 48)")
    ap.add_argument("--repeats", type=int, default=3, help="timed batches per pool size (default 3; median)")
    ap.add_argument("--run-ms", type=float, nargs="+", default=[0.0, 30.0],
                    help="modelled core time per run of the virtual boards, one measurement each (default 0 30)")
    args = ap.parse_args(argv)
    if args.boards < 1 or args.inputs < args.boards or args.repeats < 1:
        ap.error("--boards >= 1, --inputs >= --boards, --repeats >= 1")
    os.environ.setdefault("SPS_PYNQ_OVERLAY", str(OVERLAY))
    os.environ.pop("SPS_PYNQ_REMOTE", None)
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} at start")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else pack_model(Path(tmp))
        print(f"model: {model.name}; {args.inputs} inputs per batch, median of {args.repeats} batches per pool size")
        rows = []
        for run_ms in args.run_ms:
            boards = start_boards(args.boards, run_ms, seconds=3600)
            try:
                times = measure(model, [p.address for p in boards], args.inputs, args.repeats)
            finally:
                stop_boards(boards)
            base = args.inputs / statistics.median(times[1])
            for k, ts in times.items():
                rate = args.inputs / statistics.median(ts)
                rows.append((run_ms, k, rate, rate / base, min(ts), max(ts)))
    print()
    print("| core time per run (--run-ms) | boards | inputs/s | vs 1 board | batch seconds min .. max |")
    print("| --- | --- | --- | --- | --- |")
    for run_ms, k, rate, ratio, lo, hi in rows:
        print(f"| {run_ms:g} ms | {k} | {rate:.1f} | {ratio:.2f}x | {lo:.2f} .. {hi:.2f} |")
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
