#!/usr/bin/python3
"""The Apple Push Notification service (APNs) half of scripts/apns-double (stdlib only).

    apns-recorder.py [--host 127.0.0.1] --port 0 --log DIR

Runs behind the double's nginx, which does what real APNs does at the connection level
(HTTP/2, TLS, client certificate) and passes on, as request headers it sets itself:
  X-Protocol       nginx's $server_protocol, "HTTP/2.0" for an HTTP/2 client
  X-Client-DN      the client certificate's subject, RFC 2253: "C=US,...,CN=Pass Type ID: x,UID=x"
  X-Client-Verify  "SUCCESS" (nginx refuses every other outcome before we see the request)
Talking to this server directly, without those headers, gets TopicDisallowed for everything.

Prints "listening on PORT" on stdout once it accepts connections. HTTP/1.1 keep-alive,
Content-Length on every answer, Nagle off, one thread per (nginx upstream) connection.

POST /3/device/<token>, checked as APNs does, in this order:
  other method                        405 MethodNotAllowed
  other path                          404 BadPath
  no apns-topic header                400 MissingTopic
  apns-topic != the certificate UID   400 TopicDisallowed
  apns-push-type not a known type     400 InvalidPushType
  apns-priority not 1, 5 or 10        400 BadPriority
  apns-id given but not a UUID        400 BadMessageId
  body over 4096 bytes                413 PayloadTooLarge
  body not empty and not a JSON object  400 BadPayload (the double's own reason: Wallet
                                      pushes send "{}"; an empty body is accepted too)
then by the token's prefix (longest first):
  gone...      410 Unregistered, with "timestamp" (ms since the epoch, a day ago)
  bad...       400 BadDeviceToken
  nottopic...  400 DeviceTokenNotForTopic
  forbid...    403 BadCertificate
  busyonce...  429 TooManyRequests the first time for that token, then 200
  busy...      429 TooManyRequests always
  err500...    500 InternalServerError the first time for that token, then 200
  err503...    503 ServiceUnavailable the first time for that token, then 200
  anything else  200, empty body
Errors have a JSON body {"reason": ...}. Every answer has an apns-id header: the request's
if it sent one, else a new UUID.

DIR/requests.jsonl gets one JSON line per request, written and flushed before the answer:
  {"t", "method", "path", "token", "topic", "push_type", "priority", "expiration",
   "collapse_id", "apns_id", "protocol", "client_dn", "client_verify", "body",
   "status", "reason"}
Device tokens are not secrets; no key material ever reaches this process.
"""

import argparse
import json
import os
import re
import time
import uuid

from testhttp import Handler as TestHandler, JsonLines, Once, Server, serve, unblock_signals

PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk"}
PRIORITIES = {"1", "5", "10"}
MAX_PAYLOAD = 4096
UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
# One RDN of an RFC 2253 DN: TYPE=VALUE up to the next comma that is not escaped.
RDN_RE = re.compile(r"(?:^|,)\s*([A-Za-z0-9.]+)=((?:[^,\\]|\\.)*)")

# (prefix, status, reason, first time only); longest prefix first where one contains another.
SCRIPTED = [
    ("gone", 410, "Unregistered", False),
    ("bad", 400, "BadDeviceToken", False),
    ("nottopic", 400, "DeviceTokenNotForTopic", False),
    ("forbid", 403, "BadCertificate", False),
    ("busyonce", 429, "TooManyRequests", True),
    ("busy", 429, "TooManyRequests", False),
    ("err500", 500, "InternalServerError", True),
    ("err503", 503, "ServiceUnavailable", True),
]


def rfc2253_unescape(value):
    return re.sub(r"\\(.)", r"\1", value)


def uid_of(dn):
    """The UID (userId) of a subject DN as nginx gives it, or None."""
    for name, value in RDN_RE.findall(dn or ""):
        if name.upper() in ("UID", "USERID", "0.9.2342.19200300.100.1.1"):
            return rfc2253_unescape(value)
    return None


class State:
    def __init__(self, directory):
        self.first_time = Once()  # (prefix, token) that already had their first failure
        self.log = JsonLines(os.path.join(directory, "requests.jsonl"))


class Handler(TestHandler):
    server_version = "FanoutTestAPNs/1.0"

    def decide(self, token, body):
        """(status, reason, extra body fields) for this request."""
        h = self.headers
        if self.command != "POST":
            return 405, "MethodNotAllowed", {}
        if token is None:
            return 404, "BadPath", {}
        topic = h.get("apns-topic")
        if not topic:
            return 400, "MissingTopic", {}
        if topic != uid_of(h.get("X-Client-DN")):
            return 400, "TopicDisallowed", {}
        push_type = h.get("apns-push-type")
        if push_type is not None and push_type not in PUSH_TYPES:
            return 400, "InvalidPushType", {}
        priority = h.get("apns-priority")
        if priority is not None and priority not in PRIORITIES:
            return 400, "BadPriority", {}
        apns_id = h.get("apns-id")
        if apns_id is not None and not UUID_RE.fullmatch(apns_id):
            return 400, "BadMessageId", {}
        if len(body) > MAX_PAYLOAD:
            return 413, "PayloadTooLarge", {}
        if body.strip():
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return 400, "BadPayload", {}
        for prefix, status, reason, once in SCRIPTED:
            if token.startswith(prefix):
                if once and not self.server.state.first_time((prefix, token)):
                    break
                extra = {"timestamp": int((time.time() - 86400) * 1000)} if reason == "Unregistered" else {}
                return status, reason, extra
        return 200, None, {}

    def route(self):
        body = self.read_body()  # always, or the next request on this connection would be garbage
        path = self.path.split("?", 1)[0]
        token = None
        if path.startswith("/3/device/"):
            rest = path[len("/3/device/"):]
            if rest and "/" not in rest:
                token = rest
        status, reason, extra = self.decide(token, body)

        h = self.headers
        apns_id = h.get("apns-id")
        if apns_id is None or not UUID_RE.fullmatch(apns_id):
            apns_id = str(uuid.uuid4())
        self.server.state.log.write({
            "t": time.time(),
            "method": self.command,
            "path": path,
            "token": token,
            "topic": h.get("apns-topic"),
            "push_type": h.get("apns-push-type"),
            "priority": h.get("apns-priority"),
            "expiration": h.get("apns-expiration"),
            "collapse_id": h.get("apns-collapse-id"),
            "apns_id": h.get("apns-id"),
            "protocol": h.get("X-Protocol"),
            "client_dn": h.get("X-Client-DN"),
            "client_verify": h.get("X-Client-Verify"),
            "body": body.decode("utf-8", errors="replace"),
            "status": status,
            "reason": reason,
        })

        answer = b""
        if reason is not None:
            answer = json.dumps(dict({"reason": reason}, **extra), separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("apns-id", apns_id)
        if answer:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if answer and self.command != "HEAD":
            self.wfile.write(answer)


def main():
    p = argparse.ArgumentParser(description="APNs answers for scripts/apns-double")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--log", required=True, help="directory for requests.jsonl")
    args = p.parse_args()

    unblock_signals()
    os.makedirs(args.log, exist_ok=True)
    server = Server((args.host, args.port), Handler)
    server.state = State(args.log)
    print("listening on %d" % server.server_address[1], flush=True)
    try:
        serve(server)
    finally:
        server.state.log.close()


if __name__ == "__main__":
    main()
