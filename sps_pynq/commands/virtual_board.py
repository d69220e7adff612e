"""`sps-pynq virtual-board`: serve a virtual ZCU104 over PYNQ 4's remote protocol, for testing the board backend."""
from __future__ import annotations

import argparse
import signal
import threading

NAME = "virtual-board"
HELP = "serve a virtual ZCU104 (PYNQ remote protocol, SPS core modeled by the golden model) for board-backend tests"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; the server has no "
                        "authentication, like PYNQ.remote itself)")
    p.add_argument("--port", type=int, default=7967, help="port (default 7967, PYNQ's; 0 picks a free one)")
    p.add_argument("--backend", default="sim", choices=["sim"],
                   help="what executes the program behind the registers: 'sim' = the C golden model "
                        "(numpy reference if no C compiler)")
    from ..hw.config import CONFIGS
    p.add_argument("--hw", default=None, choices=sorted(CONFIGS),
                   help="start with this configuration's core already loaded (default: none until pynq "
                        "downloads a virtual overlay, e.g. overlays/virtual_zcu104/sps.bit)")
    p.add_argument("--fault", default="none", help="'hang', 'error CODE LAYER' or 'none' (for tests)")
    p.add_argument("--exit-after", type=float, default=None, metavar="SECONDS",
                   help="stop by itself after this many seconds (a safety net for test runs)")


def run(args) -> int:
    from ..virtual_board.server import VirtualBoard
    board = VirtualBoard(host=args.host, port=args.port, hw=args.hw)
    board.set_fault(args.fault)
    board.start()
    # The first line says where it listens; tests read it to learn the port.
    print(f"virtual ZCU104 listening on {board.address} (a model for tests, not a real board)", flush=True)
    # An absolute overlay path, so the hint works from any folder (the client resolves it in its own cwd).
    from ..virtual_board.overlay import REPO_OVERLAY
    overlay = REPO_OVERLAY if REPO_OVERLAY.exists() else "FOLDER (write one: python -m sps_pynq.virtual_board." \
                                                        "overlay --out FOLDER)"
    print(f"  client: SPS_PYNQ_REMOTE={board.address} SPS_PYNQ_OVERLAY={overlay} "
          f"sps-pynq run MODEL.spsmodel --backend board", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        stop.wait(args.exit_after)
    except KeyboardInterrupt:
        pass
    board.stop()
    return 0
