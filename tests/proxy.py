"""A TCP proxy between a server under test and PostgreSQL that can go silent without closing
anything (see `SilenceableProxy`), and the `proxy` fixture that starts one in front of the
test database. Used by the silent-outage, stall, acknowledgement and fencing tests."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from tests.conftest import Server


class SilenceableProxy:
    """A TCP proxy on 127.0.0.1 that can go silent without closing anything.

    One thread runs a `select` loop over every socket. While frozen it selects on the listening
    socket only: connections are accepted (and connected upstream) but no byte is read or
    written on any connection, so everything in flight waits in the kernel's buffers. While it
    holds replies, only the server's side is silent: what the client sends is forwarded, what
    the server answers waits. One connection alone can go silent too (`silence_connection`).
    """

    BUFFER = 1 << 20  # stop reading a side while this much waits to be written to the other

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._frozen = False
        self._holding = False  # replies (upstream → client) held
        self._silenced: set[int] = set()  # local ports of upstream sockets gone silent
        self._closing = threading.Event()
        self._pipes: list[_Pipe] = []
        self.accepted = 0
        self.accepted_frozen = 0
        self.forwarded = 0  # bytes
        self.forwarded_frozen = 0  # bytes forwarded while frozen: must stay 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="silent-proxy", daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        """From the return of this call on, no byte is forwarded in either direction."""
        with self._lock:
            self._frozen = True

    def thaw(self) -> None:
        with self._lock:
            self._frozen = False

    def hold_replies(self) -> None:
        """From the return of this call on, no byte goes from the server to a client."""
        with self._lock:
            self._holding = True

    def release_replies(self) -> None:
        with self._lock:
            self._holding = False

    def silence_connection(self, upstream_port: int) -> None:
        """From the return of this call on, the connection whose upstream socket has this local
        port (what PostgreSQL shows as its session's `client_port`) forwards nothing."""
        with self._lock:
            self._silenced.add(upstream_port)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pipes) // 2  # two pipes, one each way, per connection

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        with self._lock:
            for pipe in self._pipes:
                pipe.close()
            self._pipes.clear()
            self._listener.close()

    def _run(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                frozen = self._frozen
                pipes = [
                    p
                    for p in self._pipes
                    if not (self._holding and p.reply) and p.upstream_port not in self._silenced
                ]
            readers: list[socket.socket] = [self._listener]
            writers: list[socket.socket] = []
            if not frozen:
                readers += [p.src for p in pipes if not p.eof and len(p.buffer) < self.BUFFER]
                writers += [p.dst for p in pipes if p.buffer]
            try:
                readable, writable, _ = select.select(readers, writers, [], 0.05)
            except (OSError, ValueError) as exc:  # a socket closed under us: look again
                self.errors.append(f"select: {exc!r}")
                continue
            with self._lock:
                if self._listener in readable:
                    self._accept()
                if self._frozen:  # frozen since the select: forward nothing
                    continue
                for pipe in pipes:
                    # held, or silenced, since the select
                    if (
                        not (self._holding and pipe.reply)
                        and pipe.upstream_port not in self._silenced
                    ):
                        self._forward(pipe, readable, writable)
                self._reap()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.errors.append(f"accept: {exc!r}")
                return
            self.accepted += 1
            self.accepted_frozen += self._frozen
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError as exc:
                self.errors.append(f"connect upstream: {exc!r}")
                client.close()
                continue
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            there, back = _Pipe(client, upstream), _Pipe(upstream, client, reply=True)
            there.peer, back.peer = back, there
            there.upstream_port = back.upstream_port = upstream.getsockname()[1]
            self._pipes += [there, back]

    def _forward(
        self, pipe: _Pipe, readable: list[socket.socket], writable: list[socket.socket]
    ) -> None:
        if pipe.closed:
            return
        try:
            if pipe.src in readable:
                data = pipe.src.recv(65536)
                if data:
                    pipe.buffer += data
                else:
                    pipe.eof = True
            if pipe.dst in writable and pipe.buffer:
                sent = pipe.dst.send(pipe.buffer)
                del pipe.buffer[:sent]
                self.forwarded += sent
                self.forwarded_frozen += sent if self._frozen else 0
            if pipe.eof and not pipe.buffer and not pipe.shut:
                pipe.shut = True
                pipe.dst.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # reset by one side: close both, as a proxy does
            pipe.close()

    def _reap(self) -> None:
        done = [
            p for p in self._pipes if p.closed or (p.shut and p.peer is not None and p.peer.shut)
        ]
        for pipe in done:
            pipe.close()
        self._pipes = [p for p in self._pipes if not p.closed]


class _Pipe:
    """One direction of a proxied connection: bytes read from `src`, not yet written to `dst`."""

    def __init__(self, src: socket.socket, dst: socket.socket, reply: bool = False) -> None:
        self.src = src
        self.dst = dst
        self.reply = reply  # the server's side: upstream → client
        self.buffer = bytearray()
        self.eof = False  # src has sent FIN
        self.shut = False  # FIN passed on to dst
        self.closed = False
        self.peer: _Pipe | None = None
        self.upstream_port = 0  # local port of the socket to PostgreSQL

    def close(self) -> None:
        for pipe in (self, self.peer):
            if pipe is not None:
                pipe.closed = True
        for sock in (self.src, self.dst):
            with contextlib.suppress(OSError):
                sock.close()


def tcp_target(url: str) -> tuple[str, int] | None:
    """(host, port) of a PostgreSQL URL reached over TCP; None for a unix socket."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "host" in query or "hostaddr" in query or not parts.hostname:
        return None
    if parts.hostname.startswith("/") or parts.hostname.startswith("%2f"):
        return None
    return parts.hostname, parts.port or 5432


def via(url: str, port: int) -> str:
    """The same URL (user, password, database, options) with the proxy as its host and port."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def server_behind(proxy: SilenceableProxy, url: str, data_dir: Path, db_timeout: float) -> Server:
    """A started service whose every database connection goes through `proxy`."""
    env = {"DS_DB_TIMEOUT": f"{db_timeout:g}"}
    return Server(via(url, proxy.port), data_dir, env=env).start()


@pytest.fixture
def proxy(database_url: str) -> Iterator[SilenceableProxy]:
    target = tcp_target(database_url)
    reachable = False
    if target is not None:
        with contextlib.suppress(OSError), socket.create_connection(target, timeout=3):
            reachable = True
    if not reachable:
        pytest.skip(
            "the silent-network proxy needs PostgreSQL over TCP (e.g. 127.0.0.1:5432, set "
            f"DS_TEST_DATABASE_URL); the tests use a unix-socket one: {database_url}"
        )
    assert target is not None
    proxy = SilenceableProxy(target)
    try:
        yield proxy
    finally:
        proxy.close()
