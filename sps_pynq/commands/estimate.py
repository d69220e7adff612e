"""`sps-pynq estimate`: modelled cycles, time, frames per second, DDR bytes and energy per inference of a .spsmodel
on the SPS core, per layer and in total, without a board (docs/energy_model.md). Everything it prints is a model."""
from __future__ import annotations

import argparse
import json

from ..errors import SpsError

NAME = "estimate"
HELP = ("MODELLED cycles, time, frames/s, DDR bytes and energy per inference (by component) of a .spsmodel, per "
        "layer and in total; no board needed (cycle model + docs/energy_model.md)")


def _clock(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"--clock wants a clock in MHz above 0, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..analysis.energy_model import CORNERS, DEFAULT_CLOCK_MHZ
    p.add_argument("model", help="the .spsmodel")
    p.add_argument("--clock", type=_clock, default=DEFAULT_CLOCK_MHZ, metavar="MHZ",
                   help=f"core clock in MHz (default {DEFAULT_CLOCK_MHZ:g}, the overlay's pl_clk0)")
    p.add_argument("--corner", choices=CORNERS, default="nominal",
                   help="energy constants: nominal, or every constant at the low / high end of its range")
    p.add_argument("--dense", action="store_true",
                   help="also estimate the same network unpruned (every PPS conv dense on the same core)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from .. import model_file
    from ..analysis import energy_model as em
    program = model_file.load(args.model)
    try:
        results = [em.estimate(program, "sps", args.clock, args.corner)]
        if args.dense:
            results.append(em.estimate(program, "dense", args.clock, args.corner))
    except ValueError as e:
        raise SpsError(f"{args.model}: {e}") from e
    if args.json:
        doc = {"model": str(args.model), "modelled": True, "cycle_model": em.cycle_model_name(),
               "energy_constants": em.constants(args.corner), "estimates": [r.to_dict() for r in results]}
        if len(results) == 2:
            doc["dense_over_sps"] = em.compare({"sps": results[0], "dense": results[1]})["dense"]
        print(json.dumps(doc, indent=1))
        return 0
    print(em.format_estimate(results[0], f"{args.model} (SPS, as packed)"))
    print(f"cycle model: {em.cycle_model_name()}")
    if len(results) == 2:
        print()
        print(em.format_estimate(results[1], f"{args.model} unpruned (every PPS conv dense)", per_layer=False))
        r = em.compare({"sps": results[0], "dense": results[1]})["dense"]
        print(f"dense over SPS (modelled): {r['cycles_ratio']:.2f}x cycles, {r['total_ratio']:.2f}x energy, "
              f"{r['dynamic_ratio']:.2f}x dynamic energy")
    return 0
