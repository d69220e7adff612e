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
    p.add_argument("--client-faults", action="store_true",
                   help="let clients set faults by writing the remote file /sps_virtual/fault (tests, "
                        "`sps-pynq selftest`); without it such a write is refused (PERMISSION_DENIED)")
    p.add_argument("--run-ms", type=float, default=0.0, metavar="MS",
                   help="every run of the core lasts at least MS milliseconds, sleeping: a stand-in for the time "
                        "the FPGA would take, which costs this machine no CPU (default 0: as fast as the host "
                        "computes it; scripts/bench_pool.py)")
    p.add_argument("--exit-after", type=float, default=None, metavar="SECONDS",
                   help="stop by itself after this many seconds (a safety net for test runs)")


def run(args) -> int:
    from ..errors import BackendError
    from ..virtual_board.server import VirtualBoard, parse_fault
    try:
        parse_fault(args.fault)
    except ValueError as e:
        raise BackendError(f"--fault: {e}") from None
    if not args.run_ms >= 0:
        raise BackendError(f"--run-ms {args.run_ms}: give a time of 0 or more milliseconds")
    try:
        board = VirtualBoard(host=args.host, port=args.port, hw=args.hw, faults=args.client_faults,
                             run_seconds=args.run_ms / 1e3)
    except OSError as e:
        raise BackendError(f"--host {args.host} --port {args.port}: {e}") from None
    board.set_fault(args.fault)
    board.start()
    # The first line says where it listens; tests read it to learn the port.
    print(f"virtual ZCU104 listening on {board.address} (a model for tests, not a real board)", flush=True)
    # The client finds the virtual overlay by name through pynq (the pynq.overlays entry point).
    print(f"  client: SPS_PYNQ_REMOTE={board.address} sps-pynq run MODEL.spsmodel --backend board", flush=True)
    if args.client_faults:
        print("  clients may set faults (/sps_virtual/fault)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        stop.wait(args.exit_after)
    except KeyboardInterrupt:
        pass
    board.stop()
    return 0
