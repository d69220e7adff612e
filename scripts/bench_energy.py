#!/usr/bin/env python3
"""SPS vs dense on the board, in one run: latency, throughput, and joules per inference (idle subtracted).

    python scripts/bench_energy.py --sps sps.spsmodel --dense dense.spsmodel [--seconds 10]     # on the board
    python scripts/bench_energy.py --zoo resnet20 [--seconds 10]      # workstation: packs both first (torch)

Both models must be packed for the overlay that is loaded (same HwConfig); pack them with
`sps-pynq pack --model NAME --pps 8x4 -o sps.spsmodel` and `sps-pynq pack --model NAME --dense -o dense.spsmodel`.
On a ZCU104 with PMBus rails it prints the energy-efficiency gain (dense J/inference over SPS J/inference).
Against the virtual board (SPS_PYNQ_REMOTE=host:port SPS_PYNQ_OVERLAY=overlays/virtual_zcu104) or with
--backend sim it prints latency and throughput only and says why power is unavailable.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sps_pynq.analysis.energy import comparison, format_result, measure_model  # noqa: E402
from sps_pynq.backends import BACKEND_NAMES  # noqa: E402


def pack_pair(zoo: str, folder: Path, hw: str):
    from sps_pynq.cli import main as cli
    sps, dense = folder / f"{zoo}_sps.spsmodel", folder / f"{zoo}_dense.spsmodel"
    for extra, out in ((["--pps", "8x4"], sps), (["--dense"], dense)):
        if cli(["pack", "--model", zoo, "--hw", hw, "-o", str(out)] + extra) != 0:
            raise SystemExit(f"packing {zoo} failed")
    return sps, dense


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sps", help="the PPS .spsmodel")
    p.add_argument("--dense", help="the same network packed dense")
    p.add_argument("--zoo", help="pack this zoo model both ways first (needs the workstation extras)")
    p.add_argument("--hw", default="zcu104")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--backend", default="board", choices=BACKEND_NAMES)
    p.add_argument("--rails", default=None, help="rails to sum (default INT,1V2 on a ZCU104), or 'all'")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.zoo:
            sps, dense = pack_pair(args.zoo, Path(tmp), args.hw)
        elif args.sps and args.dense:
            sps, dense = Path(args.sps), Path(args.dense)
        else:
            p.error("give --sps and --dense, or --zoo")
        results = [measure_model(str(m), args.seconds, args.backend, args.rails, name=label)
                   for m, label in ((sps, "SPS"), (dense, "dense"))]
    for r in results:
        print(format_result(r))
    cmp = comparison(*results)
    print(f"dense/SPS median latency: {cmp['speedup_median_latency']:.2f}x; "
          f"throughput SPS/dense: {cmp['throughput_ratio']:.2f}x")
    if cmp["energy_efficiency_gain"] is None:
        print(f"energy-efficiency gain: unavailable ({results[0].power_unavailable})")
    else:
        print(f"energy-efficiency gain (dense J/inference / SPS J/inference): {cmp['energy_efficiency_gain']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": [r.to_dict() for r in results], "comparison": cmp},
                                              indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
