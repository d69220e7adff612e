"""Progress bars for the long steps (calibration, fine-tuning, the evidence and demo-training scripts): tqdm on
stderr when stderr is a terminal and tqdm is installed, nothing otherwise (logs, CI, pipes and notebooks stay
clean). $SPS_PYNQ_PROGRESS=0 turns them off, =1 on even without a terminal.

    for start in progress(range(0, n, batch), desc="calibration"):
        ...
    with progress(total=steps, desc="fine-tuning") as bar:
        bar.update(1)
"""
from __future__ import annotations

import os
import sys

ENV = "SPS_PYNQ_PROGRESS"


class _Silent:
    """What progress() returns for a manual bar when bars are off: the calls tqdm has, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def enabled(stream=None) -> bool:
    """Whether a bar would be drawn on `stream` (default stderr)."""
    forced = os.environ.get(ENV, "").strip()
    if forced in ("0", "1"):
        on = forced == "1"
    else:
        stream = sys.stderr if stream is None else stream
        try:
            on = bool(stream.isatty())
        except (AttributeError, ValueError):      # closed or replaced streams
            on = False
    if not on:
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def progress(iterable=None, *, total=None, desc: str = "", stream=None, **kwargs):
    """`iterable` wrapped in a tqdm bar on `stream` (stderr) when enabled(), else `iterable` itself. Without an
    iterable: a bar to update by hand (a context manager), or an object whose calls do nothing."""
    if not enabled(stream):
        return iterable if iterable is not None else _Silent()
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr if stream is None else stream, leave=False,
                dynamic_ncols=True, **kwargs)
