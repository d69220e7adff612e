"""`sps-pynq selftest`: check a backend (the board by default) against a bit-exact reference after installation:
random layer programs, the demo model, interrupt vs polling, partial syncs, counters against ideal cycles.
Prints a PASS/FAIL table; exit code 0 when nothing failed, 1 when a check failed."""
from __future__ import annotations

import argparse
import json
import sys

NAME = "selftest"
HELP = ("check the board (or sim, rtl) against the bit-exact reference: random layer programs, the demo model, "
        "interrupt vs polling, partial syncs, cycle counters; PASS/FAIL table, exit 1 on a failure")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..hw.config import CONFIGS
    p.add_argument("--backend", default="board", choices=("board", "sim", "rtl"),
                   help="what to check (default board: the local PYNQ board, or $SPS_PYNQ_REMOTE); it is compared "
                        "with sim, and sim with the numpy reference")
    p.add_argument("--hw", choices=sorted(CONFIGS), default=None,
                   help="hardware configuration of the random programs (default: zcu104; small for rtl)")
    p.add_argument("--programs", type=int, default=8, help="random layer programs (default 8)")
    p.add_argument("--layers", type=int, default=5, help="layers per random program (default 5)")
    p.add_argument("--digits", type=int, default=None, metavar="N",
                   help="demo digits to run (default all 200; 2 on rtl)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random programs and inputs (default 0)")
    p.add_argument("--overlay", help="with --backend board: the overlay .bit (default: found by name through pynq)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")


def run(args) -> int:
    from ..errors import InputError
    from ..testing.selftest import SelfTest
    for name in ("programs", "layers"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} {getattr(args, name)}: give at least 1")
    if args.digits is not None and args.digits < 1:
        raise InputError(f"--digits {args.digits}: give at least 1")
    if args.overlay and args.backend != "board":
        raise InputError("--overlay applies to --backend board only")
    options = {"overlay": args.overlay} if args.overlay else {}
    progress = None if args.json else (lambda name: print(f"  {name} ...", file=sys.stderr, flush=True))
    test = SelfTest(args.backend, hw=args.hw, programs=args.programs, layers=args.layers, digits=args.digits,
                    seed=args.seed, backend_options=options, progress=progress)
    report = test.run()
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(f"sps-pynq selftest: {args.backend} against {report.reference}"
              + (f" on {report.where}" if report.where else ""))
        print(report.table())
    return 0 if report.passed else 1
