"""A TCP proxy stand-in that can cut a service off (e.g. PostgreSQL) and bring it back.

Point the app at ``proxy.port`` instead of the service's port. ``cut()`` closes every live
connection and answers new ones by closing them at once (what a client sees when the database
host goes away or restarts); ``restore()`` forwards again. Stdlib only::

    with TcpProxy(5432) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/mydb"
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target_host:target_port`` until cut."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._cut = False
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections closed at once while cut

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("TcpProxy is not started")
        return int(self._listener.getsockname()[1])

    def start(self) -> Self:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._close_live()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cut(self) -> None:
        """Drop every live connection and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._cut = True
        self._close_live()

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    @property
    def is_cut(self) -> bool:
        with self._lock:
            return self._cut

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- plumbing -------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            listener = self._listener
            if listener is None:
                return
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            if self.is_cut:
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._live.update((client, upstream))
            self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), name="tcp-proxy-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._live.discard(sock)
                _close(sock)

    def _close_live(self) -> None:
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
