"""Where the board backend's device and overlay come from.

Overlay: the `overlay` argument, else $SPS_PYNQ_OVERLAY (a .bit or a folder holding sps.bit), else
overlays/zcu104/sps.bit (next to the package, in the working folder, or in PYNQ's overlay folder
/home/xilinx/pynq/overlays/sps/). The .hwh of the same name must sit next to it.

Device: the `device` argument, else $SPS_PYNQ_REMOTE=host[:port] (a PYNQ 4 remote device on any port, e.g. the
virtual ZCU104), else pynq's own choice (the local board, or $PYNQ_REMOTE_DEVICES on port 7967).

Torch- and onnx-free; pynq is imported only when a device is asked for.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple

from ...errors import BackendError

OVERLAY_ENV = "SPS_PYNQ_OVERLAY"
REMOTE_ENV = "SPS_PYNQ_REMOTE"
PYNQ_PORT = 7967                      # PYNQ 4's remote port (pynq.pl_server.remote_device.PYNQ_PORT)

_REPO = Path(__file__).resolve().parents[3]


def _overlay_candidates():
    yield _REPO / "overlays" / "zcu104" / "sps.bit"
    yield Path.cwd() / "overlays" / "zcu104" / "sps.bit"
    yield Path("/home/xilinx/pynq/overlays/sps/sps.bit")


def _as_bitfile(path: Path) -> Path:
    return path / "sps.bit" if path.is_dir() else path


def find_overlay(explicit: "str | os.PathLike | None" = None) -> Optional[Path]:
    """The overlay .bit to load (with its .hwh next to it), or None. An explicit or $SPS_PYNQ_OVERLAY path
    that does not exist is an error, not a reason to look elsewhere."""
    for given, what in ((explicit, "overlay argument"), (os.environ.get(OVERLAY_ENV), f"${OVERLAY_ENV}")):
        if given:
            bit = _as_bitfile(Path(given).expanduser())
            if not bit.is_file():
                raise BackendError(f"{what} {given}: no overlay there (expected a .bit file or a folder holding "
                                   f"sps.bit); build it with hw_src/vivado or copy overlays/zcu104/ to the board")
            if not bit.with_suffix(".hwh").is_file():
                raise BackendError(f"{what} {given}: {bit.with_suffix('.hwh').name} is missing next to {bit.name}; "
                                   f"pynq needs the .hwh Vivado wrote with the bitstream")
            return bit.resolve()
    for bit in _overlay_candidates():
        if bit.is_file() and bit.with_suffix(".hwh").is_file():
            return bit.resolve()
    return None


def _parse_remote(text: str) -> Tuple[str, int]:
    host, _, port = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "")
    try:
        return host, int(port) if port else PYNQ_PORT
    except ValueError:
        raise BackendError(f"${REMOTE_ENV}={text!r}: expected host or host:port") from None


def _reachable(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def board_available() -> Tuple[bool, str]:
    """(True, what) when the board backend can run here: a device (local PYNQ board, $SPS_PYNQ_REMOTE or
    $PYNQ_REMOTE_DEVICES, reachable), an SPS overlay file, and pynq importable. Cheap and never raises."""
    try:
        remote = os.environ.get(REMOTE_ENV) or ""
        pynq_remote = os.environ.get("PYNQ_REMOTE_DEVICES") or ""
        local = os.path.isfile("/proc/device-tree/chosen/pynq_board")
        if remote:
            host, port = _parse_remote(remote)
            if not _reachable(host, port):
                return False, f"${REMOTE_ENV}={remote}: nothing answers at {host}:{port}"
            device = f"remote PYNQ device {host}:{port}"
        elif pynq_remote:
            host = pynq_remote.split(",")[0].strip()
            if not _reachable(host, PYNQ_PORT):
                return False, f"$PYNQ_REMOTE_DEVICES={pynq_remote}: nothing answers at {host}:{PYNQ_PORT}"
            device = f"remote PYNQ device {host}:{PYNQ_PORT}"
        elif local:
            device = "local PYNQ board"
        else:
            return False, "no PYNQ board here (no /proc/device-tree/chosen/pynq_board, $PYNQ_REMOTE_DEVICES or " \
                          f"${REMOTE_ENV})"
        overlay = find_overlay()
        if overlay is None:
            return False, f"{device}, but no SPS overlay (overlays/zcu104/sps.bit + .hwh or ${OVERLAY_ENV})"
        if importlib.util.find_spec("pynq") is None:
            return False, f"{device}, but pynq is not installed (pip install sps-pynq[board])"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynq  # noqa: F401
        return True, f"{device}, overlay {overlay}"
    except Exception as e:          # never raise: "auto" falls back to sim with the reason
        return False, f"board check failed: {type(e).__name__}: {e}"


# One pynq remote device per process and address, so several Sessions share it.
_REMOTE_DEVICES: Dict[Tuple[str, int], object] = {}


def import_pynq():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynq
        return pynq
    except ImportError as e:
        raise BackendError(f"the board backend needs pynq ({e}); on the board: pip install sps-pynq[board]") from e


def get_device(pynq, device=None):
    """`device` when given, else the remote device of $SPS_PYNQ_REMOTE (made pynq's active device), else pynq's
    active device (the local board, or $PYNQ_REMOTE_DEVICES)."""
    if device is not None:
        return device
    remote = os.environ.get(REMOTE_ENV)
    if remote:
        host, port = _parse_remote(remote)
        dev = _REMOTE_DEVICES.get((host, port))
        if dev is None:
            from pynq.pl_server.remote_device import RemoteDevice
            try:
                dev = RemoteDevice(len(_REMOTE_DEVICES), host, port)
            except Exception as e:
                raise BackendError(f"${REMOTE_ENV}={remote}: cannot reach a PYNQ remote device at {host}:{port} "
                                   f"({e}); start it (on the board: the PYNQ.remote server; here: "
                                   f"`sps-pynq virtual-board --port {port}`)") from e
            _REMOTE_DEVICES[(host, port)] = dev
        # pynq resolves some registers through the active device (AXI port widths, clocks), so make the
        # device we talk to the active one; pynq's Clocks caches its device, drop a stale one.
        pynq.Device.active_device = dev
        from pynq.ps import Clocks
        if getattr(Clocks, "device", None) is not dev and hasattr(Clocks, "_real_instance"):
            del Clocks._real_instance
        Clocks.set_device(dev)
        return dev
    try:
        return pynq.Device.active_device
    except RuntimeError as e:
        raise BackendError(f"no PYNQ device found ({e}): run on the board, or set $PYNQ_REMOTE_DEVICES / "
                           f"${REMOTE_ENV} to a PYNQ remote device") from e
