#!/usr/bin/python3
"""A real HTTP/1.1 server for Fanout's wallet tests and demo (stdlib only).

    http-server.py --host 127.0.0.1 --port 0 --state DIR [--tls-cert F --tls-key F]

Keep-alive with a correct Content-Length on every response, Nagle off (without
it a Python server answers ~22 requests/s on loopback because of delayed ACKs),
one thread per connection. Files in DIR, for tests:
  DIR/port              the port actually listened on, written atomically when
                        ready; removed on exit
  DIR/connections.log   one line per accepted TCP connection (connection reuse)
  DIR/requests/NNNNNN.json   what /collect/... received

Routes (any method; the query string is ignored for routing):
  /echo...                    200, JSON of the request, header X-Echo: yes
  /status/NNN                 that status, body "status NNN"
  /slow/SECONDS               sleeps, then 200 "slow ok"
  /flaky/KEY/N                first N requests for KEY: 500 "flaky failure"; then 200 "ok"
  /retry-after/KEY/SECONDS    first request for KEY: 429 + Retry-After: SECONDS; then 200 "ok"
  /big/BYTES                  200 with BYTES bytes of "x"
  /collect/...                200 {"ok":true}; the request is stored in DIR/requests
  anything else               404 "not found: PATH"
"""

import argparse
import base64
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse

from testhttp import Handler as TestHandler, Server, serve, unblock_signals, write_atomically


class State:
    def __init__(self, directory):
        self.directory = directory
        self.requests_dir = os.path.join(directory, "requests")
        os.makedirs(self.requests_dir, exist_ok=True)
        self.lock = threading.Lock()
        self.flaky = {}
        self.retry_after_seen = set()
        # Continue after existing files: a restarted server must not
        # overwrite what a test is about to read.
        numbers = [
            int(m.group(1))
            for name in os.listdir(self.requests_dir)
            for m in [re.fullmatch(r"(\d+)\.json", name)]
            if m
        ]
        self.next_request = max(numbers, default=0) + 1
        try:
            with open(os.path.join(directory, "connections.log"), "rb") as f:
                self.connections = sum(1 for _ in f)
        except FileNotFoundError:
            self.connections = 0

    def new_connection(self, peer, scheme):
        with self.lock:
            self.connections += 1
            with open(os.path.join(self.directory, "connections.log"), "a", encoding="utf-8") as f:
                f.write("%d %s %s %s:%s\n" % (self.connections, time.strftime("%Y-%m-%dT%H:%M:%S"), scheme, peer[0], peer[1]))
            return self.connections

    def flaky_should_fail(self, key, n):
        with self.lock:
            count = self.flaky.get(key, 0) + 1
            self.flaky[key] = count
            return count <= n

    def retry_after_first(self, key):
        with self.lock:
            if key in self.retry_after_seen:
                return False
            self.retry_after_seen.add(key)
            return True

    def collect(self, record):
        with self.lock:
            number = self.next_request
            self.next_request += 1
        path = os.path.join(self.requests_dir, "%06d.json" % number)
        write_atomically(path, json.dumps(record, indent=1).encode("utf-8") + b"\n")
        return number


class Handler(TestHandler):
    server_version = "FanoutTestHTTP/1.0"

    def setup(self):
        self.connection_number = self.server.state.new_connection(self.client_address, self.server.scheme)
        if isinstance(self.request, ssl.SSLSocket):
            # Handshake here, in the connection's own thread, not in accept():
            # a client that never completes it must not block other clients.
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def send(self, status, body, content_type="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        no_body = status < 200 or status in (204, 304)
        if not no_body:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def request_record(self, body):
        url = urllib.parse.urlsplit(self.path)
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        return {
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "query_params": urllib.parse.parse_qs(url.query, keep_blank_values=True),
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
            "body_base64": base64.b64encode(body).decode("ascii"),
            "connection": self.connection_number,
        }

    def route(self):
        body = self.read_body()  # always, or the next request on this connection would be garbage
        path = urllib.parse.urlsplit(self.path).path
        parts = path.split("/")[1:]
        try:
            if path.startswith("/echo"):
                payload = json.dumps(self.request_record(body), indent=1)
                self.send(200, payload, "application/json", [("X-Echo", "yes")])
            elif parts[0] == "status" and len(parts) == 2 and parts[1].isdigit():
                code = int(parts[1])
                if not 200 <= code <= 599:
                    self.send(400, "status must be 200-599")
                else:
                    self.send(code, "status %d" % code)
            elif parts[0] == "slow" and len(parts) == 2:
                time.sleep(float(parts[1]))
                self.send(200, "slow ok")
            elif parts[0] == "flaky" and len(parts) == 3:
                if self.server.state.flaky_should_fail(parts[1], int(parts[2])):
                    self.send(500, "flaky failure")
                else:
                    self.send(200, "ok")
            elif parts[0] == "retry-after" and len(parts) == 3:
                if self.server.state.retry_after_first(parts[1]):
                    self.send(429, "too many requests", headers=[("Retry-After", parts[2])])
                else:
                    self.send(200, "ok")
            elif parts[0] == "big" and len(parts) == 2 and parts[1].isdigit():
                self.send(200, b"x" * int(parts[1]), "application/octet-stream")
            elif parts[0] == "collect":
                self.server.state.collect(self.request_record(body))
                self.send(200, '{"ok":true}', "application/json")
            else:
                self.send(404, "not found: %s" % path)
        except ValueError as error:  # a malformed number in the path
            self.send(400, "bad request: %s" % error)


def parse_args():
    p = argparse.ArgumentParser(description="HTTP test server for Fanout")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--state", required=True, help="directory for port, connections.log, requests/")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def main():
    args = parse_args()
    unblock_signals()
    os.makedirs(args.state, exist_ok=True)
    server = Server((args.host, args.port), Handler)
    server.state = State(args.state)
    server.scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.scheme = "https"

    port = server.server_address[1]
    port_file = os.path.join(args.state, "port")
    write_atomically(port_file, b"%d\n" % port)
    print("http-server: %s on %s:%d, state %s" % (server.scheme, args.host, port, args.state), file=sys.stderr, flush=True)
    serve(server, port_file)


if __name__ == "__main__":
    main()
