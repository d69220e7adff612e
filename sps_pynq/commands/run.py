"""`sps-pynq run`: run a .spsmodel on a backend, print the top classes and the latency."""
from __future__ import annotations

import argparse
import os
import stat
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
    p.add_argument("--json", action="store_true", help="print one JSON document (outputs, latency, counters) "
                   "instead of the text")


def _load_input(args, session, say):
    import numpy as np
    if args.input is None:
        shape = session.inputs[0].shape
        x = np.random.default_rng(args.seed).standard_normal((1,) + shape).astype(np.float32)
        say(f"input: no --input given, using a seeded random N(0,1) input of shape {x.shape} (seed {args.seed})")
        return x, {"random": True, "seed": args.seed, "shape": list(x.shape), "dtype": str(x.dtype)}
    x = read_npy(args.input, session.inputs[0].shape)
    say(f"input: {args.input} {x.dtype} {x.shape}")
    return x, {"file": args.input, "shape": list(x.shape), "dtype": str(x.dtype)}


def read_npy(path: str, sample_shape: tuple):
    """The array in the .npy file `path`, checked from its header before anything is allocated: one numeric
    array (float, or int8 for raw input) of a whole number of samples of shape `sample_shape`, whose data
    is exactly what the header declares. InputError naming the file otherwise (an .npz, a pickle, an object
    array, an empty array, a header that lies about the size). Pickles are never loaded. (A masked array
    cannot come this way: numpy does not write one to a .npy file.)"""
    import numpy as np
    from numpy.lib import format as npy
    from ..errors import InputError

    def bad(what: str) -> InputError:
        return InputError(f"{path}: {what}")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise bad(f"cannot read a .npy array ({e.strerror or e})") from e
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise bad("cannot read a .npy array (not a regular file)")
        head = f.read(8)
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            raise bad("is an .npz archive; save the one input array with numpy.save(FILE.npy, x)")
        if head[:1] == b"\x80":
            raise bad("is a Python pickle, not a .npy array; pickles are not loaded (they can run code): save the "
                      "array with numpy.save")
        if head[:6] != b"\x93NUMPY":
            raise bad("cannot read a .npy array (no .npy header" + ("; the file is empty)" if not head else ")"))
        f.seek(0)
        try:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} (this reads 1.0 and 2.0)")
        except (ValueError, EOFError, SyntaxError) as e:
            raise bad(f"cannot read a .npy array ({e})") from e
        if dtype.hasobject:
            raise bad(f"holds Python objects (dtype {dtype}); pickles are not loaded (they can run code): save a "
                      f"float or int8 array")
        if not (np.issubdtype(dtype, np.floating) or dtype == np.int8):
            raise bad(f"dtype {dtype}: give float32/float64 (quantized with the model's input scale) or int8 (raw "
                      f"int8 input)")
        count = 1
        for n in shape:
            count *= n
        if count == 0:
            raise bad(f"holds no data (shape {shape})")
        data = st.st_size - f.tell()
        if data != count * dtype.itemsize:
            raise bad(f"holds {data} bytes of data, but its header declares {shape} {dtype} ({count * dtype.itemsize} "
                      f"bytes); the file is truncated or not written by numpy.save")
        per = 1
        for n in sample_shape:
            per *= n
        if count % per:                  # Session checks the exact shape; this bounds what is read
            raise bad(f"expected shape {tuple(sample_shape)} / (N, {', '.join(map(str, sample_shape))}), got "
                      f"{shape} ({count} elements, not a whole number of inputs of {per})")
        f.seek(0)
        try:
            x = npy.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise bad(f"cannot read a .npy array ({e})") from e
    return x


def run(args) -> int:
    import json
    import numpy as np
    from ..errors import InputError
    from ..runtime.session import Session
    if args.repeat < 1 or args.top < 1:
        raise InputError(f"--repeat and --top must be at least 1, got {args.repeat} and {args.top}")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: give a number of CPU threads, or 0 for all")
    options = {"threads": args.threads} if args.backend == "sim" else {}     # a sim-only option
    say = (lambda text: None) if args.json else print
    doc = {"model": args.model}
    with Session(args.model, backend=args.backend, **options) as s:
        say(f"backend: {s.backend.name} ({s.chosen_backend_reason})")
        doc.update(backend=s.backend.name, backend_reason=s.chosen_backend_reason)
        x, doc["input"] = _load_input(args, s, say)
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
        names = s.classes if s.classes and len(s.classes) == flat.shape[1] else None
        doc["outputs"] = {"kind": kind, "samples": []}
        for n, row in enumerate(flat):
            top = np.argsort(-row.astype(np.float64), kind="stable")[:args.top]
            label = [f"{int(c)}" + (f" {names[c]!r}" if names and names[c] != str(int(c)) else "") for c in top]
            text = ", ".join(f"{lab}: {row[c]:.4f}" if not raw else f"{lab}: {int(row[c])}"
                             for lab, c in zip(label, top))
            say(f"sample {n}: top {len(top)} classes ({kind}): {text}")
            doc["outputs"]["samples"].append([{"class": int(c), **({"name": names[c]} if names else {}),
                                               "value": int(row[c]) if raw else float(row[c])} for c in top])
        st = s.stats()
        ms = np.array(per_sample) * 1e3
        say(f"latency: {np.median(ms):.3f} ms median per sample (min {ms.min():.3f}, max {ms.max():.3f}) over "
            f"{len(ms)} runs on {s.backend.name}; whole call incl. host steps {np.median(walls) * 1e3:.3f} ms")
        doc["latency_ms"] = {"median": float(np.median(ms)), "min": float(ms.min()), "max": float(ms.max()),
                             "runs": int(len(ms)), "whole_call_median": float(np.median(walls) * 1e3)}
        if st.get("cycles"):
            say(f"core clock cycles (last run): {st['cycles']:,}, MAC-active {st.get('mac_cycles', 0):,}, "
                f"memory stalls {st.get('stall_cycles', 0):,}")
            if st.modelled:
                say(f"  note: {st.note}")      # modelled counters, not measurements: say so
            doc["counters"] = {"cycles": st["cycles"], "mac_cycles": st.get("mac_cycles", 0),
                               "stall_cycles": st.get("stall_cycles", 0), "modelled": bool(st.modelled),
                               "note": st.note}
        if st.get("macs"):
            say(f"MACs per sample: {st['macs']:,} nonzero of {st['dense_macs']:,} dense-equivalent "
                f"({st['dense_macs'] / st['macs']:.2f}x fewer)")
            doc["macs"] = {"nonzero": st["macs"], "dense": st["dense_macs"]}
    if args.json:
        print(json.dumps(doc, indent=1))
    return 0
