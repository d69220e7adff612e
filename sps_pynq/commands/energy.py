"""`sps-pynq energy`: latency, throughput, power above idle and joules per inference of a .spsmodel on the board."""
from __future__ import annotations

import argparse
import json

from ..backends import BACKEND_NAMES
from .estimate import _clock

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
    p.add_argument("--clock", type=_clock, default=None, metavar="MHZ",
                   help="core clock for the modelled estimate printed beside the measurement (default 150, the "
                        "overlay's pl_clk0)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _beside(results, paths, clock):
    """The modelled estimate of each measured model (docs/energy_model.md), or why there is none."""
    from .. import model_file
    from ..analysis import energy_model as em
    out = []
    for r, path in zip(results, paths):
        try:
            out.append(em.beside_measurement(r, model_file.load(path), clock or em.DEFAULT_CLOCK_MHZ))
        except Exception as e:          # an estimate must never cost the measurement: say why and go on
            out.append({"modelled": True, "unavailable": f"{type(e).__name__}: {e}"})
    return out


def run(args) -> int:
    from ..analysis.energy import comparison, format_result, measure_model
    kwargs = {"overlay": args.overlay} if args.backend == "board" and args.overlay else {}
    results = [measure_model(args.model, args.seconds, args.backend, args.rails, **kwargs)]
    if args.dense_model:
        results.append(measure_model(args.dense_model, args.seconds, args.backend, args.rails, **kwargs))
    cmp = comparison(results[0], results[1]) if len(results) == 2 else None
    beside = _beside(results, [args.model, args.dense_model][:len(results)], args.clock)
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results], "comparison": cmp,
                          "modelled_estimates": beside}, indent=1))
        return 0
    from ..analysis.energy_model import format_beside
    for r, b in zip(results, beside):
        print(format_result(r))
        print(f"  modelled estimate unavailable ({b['unavailable']})" if "unavailable" in b else format_beside(b))
    if cmp:
        print(f"SPS over dense: median latency ratio dense/SPS {cmp['speedup_median_latency']:.2f}x, "
              f"throughput ratio SPS/dense {cmp['throughput_ratio']:.2f}x", end="")
        if cmp["energy_efficiency_gain"] is not None:
            print(f", {cmp['energy_efficiency_gain']:.2f}x fewer joules per inference")
        else:
            print("; energy ratio unavailable (no power rails)")
    return 0
