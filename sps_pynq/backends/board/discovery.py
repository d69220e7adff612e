"""Where the board backend's device and overlay come from.

Overlay: the `overlay` argument, else $SPS_PYNQ_OVERLAY (a .bit or a folder holding sps.bit), else the overlay
installed with the package, found BY NAME through pynq: `overlays/` of the repository is installed as the package
`sps_pynq.overlays` and registered under pynq's `pynq.overlays` entry point, so `pynq.Bitstream("zcu104/sps.bit")`
finds it wherever pip put it (as pynq finds any PYNQ package's overlays). The name is the board's:
`zcu104/sps.bit` on a ZCU104, `virtual_zcu104/sps.bit` on the virtual ZCU104. The .hwh of the same name must sit
next to the .bit.

Device: the `device` argument (a pynq device, or "host[:port]" of a PYNQ 4 remote device: one board of a
`runtime.pool.BoardPool`), else $SPS_PYNQ_REMOTE=host[:port] (a PYNQ 4 remote device on any port, e.g. the
virtual ZCU104), else pynq's own choice (the local board, or $PYNQ_REMOTE_DEVICES on port 7967).

Torch- and onnx-free; pynq is imported only when a device is asked for.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from ...errors import BackendError

OVERLAY_ENV = "SPS_PYNQ_OVERLAY"
REMOTE_ENV = "SPS_PYNQ_REMOTE"
PYNQ_PORT = 7967                      # PYNQ 4's remote port (pynq.pl_server.remote_device.PYNQ_PORT)
BITFILE = "sps.bit"
BOARDS = ("zcu104", "virtual_zcu104")  # the overlays this package installs (folders of overlays/), by board

log = logging.getLogger(__name__)


def overlay_name(board: str) -> str:
    """The name pynq resolves through the `pynq.overlays` entry point: e.g. "zcu104/sps.bit"."""
    return f"{board}/{BITFILE}"


def _as_bitfile(path: Path) -> Path:
    return path / BITFILE if path.is_dir() else path


class _NoDevice:
    """What pynq.Bitstream gets as `device` when there is none yet: it only asks a device for its name, to pick a
    device-specific file from NAME.bit.d/ folders, which this package does not use."""


def resolve_overlay(board: str, device=None) -> Optional[Path]:
    """pynq's own resolution of the overlay named `overlay_name(board)` (its `pynq.overlays` entry points), or None
    when pynq is not installed or no installed package has it."""
    if importlib.util.find_spec("pynq") is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # pkg_resources' deprecation; pynq's "multiple matches" note
            from pynq.bitstream import Bitstream
            bit = Bitstream(overlay_name(board), device=device if device is not None else _NoDevice())
        return Path(bit.bitfile_name)
    except (IOError, OSError):
        return None
    except Exception as e:                      # a pynq without entry-point support, a broken install
        log.debug("pynq could not resolve %s: %s: %s", overlay_name(board), type(e).__name__, e)
        return None


def find_overlay(explicit: "str | os.PathLike | None" = None, boards: Sequence[str] = BOARDS,
                 device=None) -> Optional[Path]:
    """The overlay .bit to load (with its .hwh next to it), or None: `explicit`, else $SPS_PYNQ_OVERLAY, else the
    first of `boards` whose overlay pynq resolves by name. An explicit or $SPS_PYNQ_OVERLAY path that does not
    exist is an error, not a reason to look elsewhere."""
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
    for board in boards:
        bit = resolve_overlay(board, device)
        if bit is not None and bit.with_suffix(".hwh").is_file():
            return bit.resolve()
    return None


def _parse_remote(text: str, what: str = f"${REMOTE_ENV}") -> Tuple[str, int]:
    host, _, port = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "")
    try:
        port_number = int(port) if port else PYNQ_PORT
    except ValueError:
        raise BackendError(f"{what}={text!r}: expected host or host:port") from None
    if not host or not 0 < port_number < 65536:
        raise BackendError(f"{what}={text!r}: expected host or host:port (port 1..65535)")
    return host, port_number


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
        if importlib.util.find_spec("pynq") is None:
            return False, f"{device}, but pynq is not installed (pip install sps-pynq[board])"
        overlay = find_overlay()
        if overlay is None:
            return False, (f"{device}, but no SPS overlay: pynq resolves none of "
                           f"{', '.join(overlay_name(b) for b in BOARDS)} (install sps-pynq with its overlays, "
                           f"see docs/board.md) and ${OVERLAY_ENV} is not set")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynq  # noqa: F401
        return True, f"{device}, overlay {overlay}"
    except Exception as e:          # never raise: "auto" falls back to sim with the reason
        return False, f"board check failed: {type(e).__name__}: {e}"


# One pynq remote device per process and address, so several Sessions share it.
_REMOTE_DEVICES: Dict[Tuple[str, int], object] = {}


def board_label(device) -> str:
    """The device as messages name it."""
    return str(getattr(device, "name", None) or device)


def board_name(device, remote: bool) -> str:
    """The board's name as the overlays folder names it ("zcu104"): $BOARD (set on PYNQ images) or the device
    tree's pynq_board (a remote device's name, which pynq reads from there); "zcu104" when neither says."""
    text = ""
    try:
        if remote:
            text = str(getattr(device, "name", "") or "")      # pynq's RemoteDevice reads the board name once
        else:
            text = os.environ.get("BOARD") or Path("/proc/device-tree/chosen/pynq_board").read_text(errors="replace")
    except Exception:
        pass
    name = text.strip("\x00 \n").lower()
    return name if name and name.replace("_", "").isalnum() else "zcu104"


def import_pynq():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynq
        return pynq
    except ImportError as e:
        raise BackendError(f"the board backend needs pynq ({e}); on the board: pip install sps-pynq[board]") from e


def get_device(pynq, device=None):
    """`device` when given (a pynq Device, or "host[:port]" of a PYNQ 4 remote device), else the remote device of
    $SPS_PYNQ_REMOTE, else pynq's active device (the local board, or $PYNQ_REMOTE_DEVICES). A remote device is
    made pynq's active one."""
    if isinstance(device, str):
        host, port = _parse_remote(device, "device")
        return remote_device(pynq, host, port, f"device {device!r}")
    if device is not None:
        return device
    remote = os.environ.get(REMOTE_ENV)
    if remote:
        host, port = _parse_remote(remote)
        return remote_device(pynq, host, port, f"${REMOTE_ENV}={remote}")
    try:
        return pynq.Device.active_device
    except RuntimeError as e:
        raise BackendError(f"no PYNQ device found ({e}): run on the board, or set $PYNQ_REMOTE_DEVICES / "
                           f"${REMOTE_ENV} to a PYNQ remote device") from e


def remote_device(pynq, host: str, port: int, what: str):
    """The PYNQ 4 remote device at host:port (one per process and address, so several Sessions share it), made
    pynq's active device. `what` names where the address came from, for the error."""
    dev = _REMOTE_DEVICES.get((host, port))
    if dev is None:
        from pynq.pl_server.remote_device import RemoteDevice
        if not _reachable(host, port, timeout=3.0):     # a refused port at once, not after pynq's 5 s wait
            raise BackendError(f"{what}: nothing answers at {host}:{port}; start the PYNQ remote device there (on "
                               f"the board: the PYNQ.remote server; here: `sps-pynq virtual-board --port {port}`)")
        try:
            dev = RemoteDevice(len(_REMOTE_DEVICES), host, port)
        except Exception as e:
            raise BackendError(f"{what}: cannot reach a PYNQ remote device at {host}:{port} ({e}); start it (on "
                               f"the board: the PYNQ.remote server; here: `sps-pynq virtual-board --port {port}`)"
                               ) from e
        _REMOTE_DEVICES[(host, port)] = dev
    # pynq resolves some registers through the active device (AXI port widths, clocks), so make the
    # device we talk to the active one; pynq's Clocks caches its device, drop a stale one.
    pynq.Device.active_device = dev
    from pynq.ps import Clocks
    if getattr(Clocks, "device", None) is not dev and hasattr(Clocks, "_real_instance"):
        del Clocks._real_instance
    Clocks.set_device(dev)
    return dev
