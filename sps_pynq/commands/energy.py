"""`sps-pynq energy`: latency, throughput, power above idle and joules per inference of a .spsmodel on the board."""
from __future__ import annotations

import argparse
import json

from ..backends import BACKEND_NAMES

NAME = "energy"
HELP = ("measure latency, throughput and energy per inference on the board (PMBus rails, idle subtracted); "
        "with --dense-model also the energy-efficiency gain of SPS over dense")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the SPS .spsmodel")
    p.add_argument("--dense-model", help="the same network packed dense (`sps-pynq pack --dense`) for the same "
                                         "overlay: reports the J/inference ratio dense/SPS")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="length of the idle phase and of each active phase (default 10)")
    p.add_argument("--backend", default="board", choices=BACKEND_NAMES,
                   help="where to run (default board; other backends give latency only)")
    p.add_argument("--overlay", help="the overlay .bit (default: $SPS_PYNQ_OVERLAY or overlays/zcu104/sps.bit)")
    p.add_argument("--rails", default=None,
                   help="comma-separated rails to sum (as pynq.get_rails() names them), or 'all'; "
                        "default on a ZCU104: INT,1V2")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from ..analysis.energy import comparison, format_result, measure_model
    kwargs = {"overlay": args.overlay} if args.backend == "board" and args.overlay else {}
    results = [measure_model(args.model, args.seconds, args.backend, args.rails, **kwargs)]
    if args.dense_model:
        results.append(measure_model(args.dense_model, args.seconds, args.backend, args.rails, **kwargs))
    cmp = comparison(results[0], results[1]) if len(results) == 2 else None
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results], "comparison": cmp}, indent=1))
        return 0
    for r in results:
        print(format_result(r))
    if cmp:
        print(f"SPS over dense: median latency ratio dense/SPS {cmp['speedup_median_latency']:.2f}x, "
              f"throughput ratio SPS/dense {cmp['throughput_ratio']:.2f}x", end="")
        if cmp["energy_efficiency_gain"] is not None:
            print(f", {cmp['energy_efficiency_gain']:.2f}x fewer joules per inference")
        else:
            print("; energy ratio unavailable (no power rails)")
    return 0
