"""`sps-pynq run`: run a .spsmodel on a backend, print the top classes and the latency."""
from __future__ import annotations

import argparse
import time

from ..backends import BACKEND_NAMES

NAME = "run"
HELP = "run a .spsmodel on the board, the sim or the rtl backend; print top classes and latency"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .spsmodel file (from `sps-pynq pack`)")
    p.add_argument("--input", metavar="X.npy", help="input array, float (C,H,W) or (N,C,H,W), or int8 raw; "
                   "default: a seeded random N(0,1) input")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKEND_NAMES,
                   help="auto = the board when an SPS overlay is present, else sim (default)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per sample (default 5)")
    p.add_argument("--repeat", type=int, default=1, help="run the input this many times, report the latency")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    p.add_argument("--threads", type=int, default=0, help="with --backend sim: CPU threads (default: all)")


def _load_input(args, session):
    import numpy as np
    from ..errors import InputError
    if args.input is None:
        shape = session.inputs[0].shape
        x = np.random.default_rng(args.seed).standard_normal((1,) + shape).astype(np.float32)
        print(f"input: no --input given, using a seeded random N(0,1) input of shape {x.shape} (seed {args.seed})")
        return x
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{args.input}: cannot read a .npy array ({e})") from e
    print(f"input: {args.input} {x.dtype} {x.shape}")
    return x


def run(args) -> int:
    import numpy as np
    from ..errors import InputError
    from ..runtime.session import Session
    if args.repeat < 1 or args.top < 1:
        raise InputError(f"--repeat and --top must be at least 1, got {args.repeat} and {args.top}")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: give a number of CPU threads, or 0 for all")
    options = {"threads": args.threads} if args.backend == "sim" else {}     # a sim-only option
    with Session(args.model, backend=args.backend, **options) as s:
        print(f"backend: {s.backend.name} ({s.chosen_backend_reason})")
        x = _load_input(args, s)
        raw = x.dtype == np.int8
        per_sample, walls = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            try:
                y = s.run_int8(x) if raw else s.run(x)
            except InputError as e:
                if args.input is None:
                    raise
                raise InputError(f"{args.input}: {e}") from e      # name the file the user gave
            walls.append(time.perf_counter() - t0)
            per_sample += s.stats().get("run_seconds", [])
        y = y[0] if isinstance(y, list) else y
        probs = any(step.get("op") == "softmax" for step in s.program.host_steps)
        kind = "int8 scores" if raw else ("probabilities" if probs else "scores (the model has no softmax)")
        flat = np.asarray(y).reshape(len(y), -1)
        for n, row in enumerate(flat):
            top = np.argsort(-row.astype(np.float64), kind="stable")[:args.top]
            text = ", ".join(f"{int(c)}: {row[c]:.4f}" if not raw else f"{int(c)}: {int(row[c])}" for c in top)
            print(f"sample {n}: top {len(top)} classes ({kind}): {text}")
        st = s.stats()
        ms = np.array(per_sample) * 1e3
        print(f"latency: {np.median(ms):.3f} ms median per sample (min {ms.min():.3f}, max {ms.max():.3f}) over "
              f"{len(ms)} runs on {s.backend.name}; whole call incl. host steps {np.median(walls) * 1e3:.3f} ms")
        if st.get("cycles"):
            print(f"core clock cycles (last run): {st['cycles']:,}, MAC-active {st.get('mac_cycles', 0):,}, "
                  f"memory stalls {st.get('stall_cycles', 0):,}")
            if st.modelled:
                print(f"  note: {st.note}")      # modelled counters, not measurements: say so
        if st.get("macs"):
            print(f"MACs per sample: {st['macs']:,} nonzero of {st['dense_macs']:,} dense-equivalent "
                  f"({st['dense_macs'] / st['macs']:.2f}x fewer)")
    return 0
