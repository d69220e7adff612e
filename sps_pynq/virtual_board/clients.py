"""Who calls the virtual board, and what each caller may hold: the limits of a shared network service.

A *client* is one gRPC connection, named by `context.peer()` (e.g. "ipv4:127.0.0.1:43210"). pynq's
`RemoteDevice` opens one channel (one connection) per device object and sends nothing that identifies it
otherwise; sps-pynq keeps one `RemoteDevice` per process and address (`backends/board/discovery.py`), so in
practice a client is a process. Its buffers, MMIO windows and view of the core's registers are its own, and are
freed when its connection is gone: the open connections are read from gRPC's channelz registry (every
`Limits.reap_seconds`); where that is not available, after `Limits.idle_seconds` without a call.

Every call is counted against its client (`Limits.calls_per_client` in flight) and timed: a call running
longer than `Limits.rpc_seconds` (a client that streams slowly or stops reading) is cancelled, so a slow client
holds a server thread for a bounded time and cannot starve the others.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Optional, Set

import grpc


@dataclass(frozen=True)
class Limits:
    rpc_seconds: float = 60.0          # a call still running after this is cancelled (the client sees CANCELLED)
    calls_per_client: int = 4          # calls in flight per client; one more is refused (RESOURCE_EXHAUSTED)
    workers: int = 32                  # server threads (every call in flight takes one)
    busy_wait_seconds: float = 10.0    # how long a START or a bitstream load waits for another client's run
    buffer_bytes: int = 256 << 20      # all buffers of one client
    ddr_bytes: int = 512 << 20         # all buffers of all clients
    buffers_per_client: int = 64       # buffers of one client
    mmio_windows_per_client: int = 64  # MMIO windows (get_mmio) of one client
    mmio_write_bytes: int = 4096       # one MMIO write
    registers: int = 4096              # plain registers written (outside the core and the buffers), all clients
    file_bytes: int = 64 << 20         # one file (a ZCU104 bitstream .bin is ~19 MB)
    files_bytes: int = 128 << 20       # all files
    files: int = 256                   # files on the board
    message_bytes: int = 4 << 20       # one gRPC message (pynq sends 2 MiB chunks)
    reap_seconds: float = 1.0          # how often what disconnected clients held is freed
    idle_seconds: float = 3600.0       # without channelz only: free what a client holds after this long idle


@dataclass(eq=False)
class Client:
    """One connection's calls and belongings."""
    peer: str
    calls: int = 0                                   # calls in flight
    last_call: float = field(default_factory=time.monotonic)
    buffers: Set[str] = field(default_factory=set)   # buffer ids it allocated
    buffer_bytes: int = 0
    mmios: Set[str] = field(default_factory=set)     # MMIO window ids it opened
    config: Dict[str, int] = field(default_factory=dict)   # its values of the core's configuration registers
    status: Dict[str, int] = field(default_factory=dict)   # the core's status after its last run, once another
                                                            # client's run has replaced it in the core


def connected_peers() -> Optional[Set[str]]:
    """The peers of every connection open to a gRPC server in this process, from gRPC's channelz registry, or
    None when it cannot be read (then nothing is freed for a closed connection, only after idle_seconds)."""
    try:
        from grpc._cython import cygrpc
        peers: Set[str] = set()
        start = 0
        while True:
            page = json.loads(cygrpc.channelz_get_servers(start))
            for server in page.get("server", []):
                sid = int(server["ref"]["serverId"])
                start = max(start, sid + 1)
                sock = 0
                while True:
                    socks = json.loads(cygrpc.channelz_get_server_sockets(sid, sock, 1000))
                    for ref in socks.get("socketRef", []):
                        peers.add(ref.get("name", "").split(" ")[-1])      # "chttp2 ipv4:127.0.0.1:43210"
                        sock = max(sock, int(ref["socketId"]) + 1)
                    if socks.get("end", True) or not socks.get("socketRef"):
                        break
            if page.get("end", True) or not page.get("server"):
                return peers
    except Exception:       # a private registry: any change in it means "unknown", never a failure
        return None


class ClientTable:
    """The clients, their calls in flight and the thread that cancels overdue calls and frees what clients that
    went away held (`on_gone(client)`, called without the table's lock)."""

    def __init__(self, limits: Limits, on_gone: Callable[[Client], None],
                 peers: Callable[[], Optional[Set[str]]] = connected_peers):
        self.limits = limits
        self.lock = threading.Lock()
        self.clients: Dict[str, Client] = {}
        self._on_gone = on_gone
        self._peers = peers
        self._calls: Dict[int, tuple] = {}          # token: (deadline, context)
        self._deadlines: Dict[int, float] = {}       # id(context): deadline, while its call runs
        self._tokens = itertools.count()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.cancelled = 0                           # calls cancelled for taking too long
        self.reaped = 0                              # clients whose belongings were freed

    @contextlib.contextmanager
    def call(self, context) -> Iterator[Client]:
        """Count and time one call of the client `context` belongs to; yields that client."""
        peer = context.peer() or "unknown"
        now = time.monotonic()
        with self.lock:
            client = self.clients.get(peer)
            if client is None:
                client = self.clients[peer] = Client(peer)
            busy = client.calls >= self.limits.calls_per_client
            if not busy:
                client.calls += 1
                client.last_call = now
                token = next(self._tokens)
                self._calls[token] = (now + self.limits.rpc_seconds, context)
                self._deadlines[id(context)] = now + self.limits.rpc_seconds
        if busy:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"virtual board: {self.limits.calls_per_client} calls of this client ({peer}) are in "
                          f"flight already; wait for them")
        try:
            yield client
        finally:
            with self.lock:
                client.calls -= 1
                client.last_call = time.monotonic()
                self._calls.pop(token, None)
                self._deadlines.pop(id(context), None)

    def expired(self, context) -> bool:
        """True once the call of `context` has run past rpc_seconds (it is, or is about to be, cancelled). A
        cancelled request stream may simply end: a handler checks this before it keeps what it received."""
        with self.lock:
            deadline = self._deadlines.get(id(context))
        return deadline is None or time.monotonic() >= deadline

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vboard-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        tick = min(0.25, self.limits.reap_seconds / 4, self.limits.rpc_seconds / 4)
        next_reap = time.monotonic() + self.limits.reap_seconds
        while not self._stop.wait(tick):
            self.cancel_overdue()
            if time.monotonic() >= next_reap:
                self.reap()
                next_reap = time.monotonic() + self.limits.reap_seconds

    def cancel_overdue(self) -> None:
        now = time.monotonic()
        with self.lock:
            late = [(t, ctx) for t, (deadline, ctx) in self._calls.items() if deadline <= now]
            for t, _ in late:
                del self._calls[t]
        for _, ctx in late:
            self.cancelled += 1
            ctx.cancel()

    def reap(self) -> None:
        """Free what clients whose connection is closed held (clients with no call since the peers were read)."""
        seen = time.monotonic()
        live = self._peers()
        with self.lock:
            gone = [c for c in self.clients.values() if c.calls == 0 and c.last_call < seen and
                    (c.peer not in live if live is not None else seen - c.last_call > self.limits.idle_seconds)]
            for c in gone:
                del self.clients[c.peer]
        for c in gone:
            self.reaped += 1
            self._on_gone(c)


def rpc(method):
    """A servicer method run as one call of its client (ClientTable.call of `self.table`): counted, timed, and
    given the client as a fourth argument. Works for unary and for response-streaming methods."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self, request, context):
            with self.table.call(context) as client:
                yield from method(self, request, context, client)
        return stream

    @functools.wraps(method)
    def unary(self, request, context):
        with self.table.call(context) as client:
            return method(self, request, context, client)
    return unary
