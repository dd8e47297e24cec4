"""What the project's Python test servers share (scripts/http-server.py, apns-recorder.py,
google-wallet-double.py): a keep-alive request handler that reads any body and sends every
method to `route`, a threading server that is quiet about clients hanging up, files written
atomically for tests that poll them, and a serve loop that stops cleanly on SIGTERM.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def write_atomically(path, data):
    """Tests poll for these files: they must never see one half written."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.tmp.%d.%d" % (name, os.getpid(), threading.get_ident()))
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class JsonLines:
    """A JSON-lines record of requests that tests read while the server runs: one whole line per
    record, flushed at once, from any handler thread."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8")

    def write(self, record):
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()

    def close(self):
        self.file.close()


class Once:
    """True the first time a key is seen, from any handler thread: a failure scripted to happen
    once per key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = set()

    def __call__(self, key):
        with self.lock:
            first = key not in self.seen
            self.seen.add(key)
            return first


class Handler(BaseHTTPRequestHandler):
    """Every method goes to `route` (a subclass defines it); `read_body` reads a sized or
    chunked body."""

    protocol_version = "HTTP/1.1"  # keep-alive: the product (and nginx upstream) reuse connections
    # Idle keep-alive connections are dropped after this (threads are daemons anyway); longer
    # than nginx's upstream keepalive_timeout, so that nginx closes idle connections first.
    timeout = 120
    # Read by StreamRequestHandler.setup: TCP_NODELAY, else delayed ACKs cap loopback at ~22/s.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass  # each server keeps its own record of requests; stderr lines are noise

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.route
        raise AttributeError(name)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers, up to the empty line
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # Clients that hang up, time out or refuse a certificate are what several tests do
        # on purpose (and nginx closes idle upstream connections): no traceback for those.
        if isinstance(sys.exc_info()[1], (OSError, EOFError)):
            return
        super().handle_error(request, client_address)


def unblock_signals():
    """A parent may start us with SIGTERM blocked (Foundation's Process does, from a test
    runner's thread): unblock it, or stopping us would never reach us."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


def serve(server, port_file=None):
    """Serves until SIGTERM or SIGINT; then closes the server and removes `port_file` if it
    still names this server's port (a stale one would send the next waiter to a dead port)."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    port = server.server_address[1]
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if port_file:
            try:
                with open(port_file, "rb") as f:
                    if f.read().strip() == b"%d" % port:
                        os.unlink(port_file)
            except FileNotFoundError:
                pass
