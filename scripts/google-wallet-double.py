#!/usr/bin/python3
"""A stand-in for Google's OAuth token endpoint and the Google Wallet REST API.

Run it with /usr/bin/python3 (Debian's python3-jwt and python3-cryptography).
It verifies what Google verifies, so tests prove that Fanout signs its
service-account JWTs correctly, not merely that it sends something.

    google-wallet-double.py keygen --out DIR --token-uri URL [--email EMAIL]
        writes DIR/service-account.json (Google's key file format), DIR/public.pem
        (its public key), DIR/other-service-account.json (same email, other key)
    google-wallet-double.py serve --port 0 --public-key PEM --email EMAIL --log DIR
            [--token-lifetime 3600] [--host 127.0.0.1] [--service-account FILE]...
        prints "listening on http://127.0.0.1:PORT" once it accepts connections
        and writes DIR/port (removed on exit). The port is unknown at keygen time:
        each --service-account FILE first gets token_uri = http://HOST:PORT/token.

POST /token: JWT-bearer grant; RS256 only, signed by --public-key's key, iss ==
  EMAIL, scope == WALLET_SCOPE, aud == http://127.0.0.1:PORT/token (or localhost),
  |iat - now| <= 120 s, exp > now, exp - iat <= 3600. 200 gives a ya29.* token.
/walletobjects/v1/...: Bearer token required. Object id: the last path segment
  (GET/PATCH/PUT) or the body's "id" (POST = insert). Ids containing "new-" exist
  only once inserted; all others exist from the start.
POST /_admin/revoke: every issued token becomes invalid; 204.
Scripted failures: DIR/token-fail holding a status (503, 429...) makes the next
  /token answer it, then the file is deleted. An object id containing perm403 or
  bad400 always fails; quota403, e429 (with Retry-After: 1), e500 or e503 fails
  the first time for that id only (see SCRIPTED).
DIR/requests.jsonl: one line per request, written before the response is sent:
  {"t","method","path","kind":"token|api|admin|other","status","object","auth"};
  auth is "ok"/"missing"/"invalid" (for /token: the assertion), null if unexamined.
"""

import argparse
import json
import os
import secrets
import threading
import time
import urllib.parse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from testhttp import Handler as TestHandler, JsonLines, Once, Server, serve, unblock_signals, write_atomically

WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_EMAIL = "fanout-test@fanout-test.iam.gserviceaccount.com"
API_PREFIX = "/walletobjects/v1/"
BAD_TIMES = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
             "timeframe. Check your iat and exp values in the JWT claim.")
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, "
                   "login cookie or other valid authentication credential.")
# Scripted by a substring of the object id: (once?, status, Google status, message, reason).
# "Once" failures happen the first time an id is seen, then the request goes through.
SCRIPTED = {
    "perm403": (False, 403, "PERMISSION_DENIED", "The caller does not have permission", "permissionDenied"),
    "bad400": (False, 400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "invalid"),
    "quota403": (True, 403, "PERMISSION_DENIED", "Quota exceeded", "quotaExceeded"),
    "e429": (True, 429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", None),
    "e500": (True, 500, "INTERNAL", "Internal error encountered.", None),
    "e503": (True, 503, "UNAVAILABLE", "The service is currently unavailable.", None),
}


def service_account(email, token_uri):
    """A key file exactly as Google's console hands it out, and its private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    info = {
        "type": "service_account", "project_id": "fanout-test",
        "private_key_id": secrets.token_hex(20), "private_key": pem,
        "client_email": email, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://example.invalid",
    }
    return info, key


def to_json(value):
    return json.dumps(value, indent=2).encode("utf-8") + b"\n"


def keygen(args):
    os.makedirs(args.out, exist_ok=True)
    info, key = service_account(args.email, args.token_uri)
    other, _ = service_account(args.email, args.token_uri)  # same email, another key
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for name, data in (("service-account.json", to_json(info)), ("public.pem", public),
                       ("other-service-account.json", to_json(other))):
        write_atomically(os.path.join(args.out, name), data)
        print(os.path.join(args.out, name))


def api_error(code, status, message, reason=None):
    """Google's JSON error body; "errors" (with a reason) only where Google names one."""
    error = {"code": code, "message": message}
    if reason:
        error["errors"] = [{"message": message, "domain": "global", "reason": reason}]
    return {"error": {**error, "status": status}}


class State:
    def __init__(self, args, port):
        self.args = args
        self.lock = threading.Lock()
        self.tokens = {}  # access token -> expiry (time.time())
        self.objects = {}  # id -> object JSON; ids without "new-" exist implicitly
        self.first_failure = Once()  # (substring, id) that already had their failure
        self.audiences = {"http://%s:%d/token" % (h, port) for h in ("127.0.0.1", "localhost", args.host)}
        with open(args.public_key, "rb") as f:
            self.public_key = serialization.load_pem_public_key(f.read())
        self.log = JsonLines(os.path.join(args.log, "requests.jsonl"))

    def take_token_failure(self):
        """The status in DIR/token-fail, once: the file is gone after this."""
        path = os.path.join(self.args.log, "token-fail")
        with self.lock:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read().strip()
                os.unlink(path)
            except FileNotFoundError:
                return None
        return int(text) if text.isdigit() else 503


class Handler(TestHandler):
    server_version = "FanoutGoogleWalletDouble/1.0"

    def send(self, status, payload=None, headers=()):
        # Logged before the response goes out: a test that has its answer can read the line.
        self.server.state.log.write({"t": time.time(), "method": self.command, "path": self.url_path, "kind": self.kind,
                               "status": status, "object": self.object_id, "auth": self.auth})
        body = b"" if status == 204 else to_json(payload)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        body = self.read_body()  # always, or the next request on this connection is garbage
        self.url_path = urllib.parse.urlsplit(self.path).path
        self.kind, self.object_id, self.auth = "other", None, None
        if self.url_path == "/token":
            self.kind = "token"
            self.token(body)
        elif self.url_path.startswith(API_PREFIX):
            self.kind = "api"
            self.api(body)
        elif self.url_path == "/_admin/revoke" and self.command == "POST":
            self.kind = "admin"
            with self.server.state.lock:
                self.server.state.tokens.clear()
            self.send(204)
        else:
            self.send(404, api_error(404, "NOT_FOUND", "Not found: %s" % self.url_path))

    def token(self, body):
        state = self.server.state
        failure = state.take_token_failure()
        if failure:
            extra = [("Retry-After", "1")] if failure == 429 else []
            error = {"error": "temporarily_unavailable", "error_description": "Scripted failure %d" % failure}
            return self.send(failure, error, extra)
        # RFC 7523 grants are form posts: a client sending JSON here is wrong for Google too.
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.send(400, {"error": "invalid_request", "error_description": "Content-Type must be application/x-www-form-urlencoded"})
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER:
            return self.send(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: %s" % grant_type})
        assertion = form.get("assertion", [""])[0]
        self.auth = "invalid"
        if not assertion:
            self.auth = "missing"
            return self.send(400, {"error": "invalid_request", "error_description": "Missing required parameter: assertion"})
        problem = self.check_assertion(assertion)
        if problem:
            return self.send(400, {"error": "invalid_grant", "error_description": problem})
        self.auth = "ok"
        token = "ya29.fanout-" + secrets.token_hex(16)
        with state.lock:
            state.tokens[token] = time.time() + state.args.token_lifetime
        self.send(200, {"access_token": token, "expires_in": state.args.token_lifetime, "token_type": "Bearer"})

    def check_assertion(self, assertion):
        """None if Google would accept the JWT, else its error_description."""
        state = self.server.state
        try:
            # algorithms=["RS256"] pins the header's alg (no "none", no PS256) and
            # verifies RSASSA-PKCS1-v1_5/SHA-256; the claims are checked below to
            # give Google's messages.
            claims = jwt.decode(assertion, state.public_key, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                         "verify_aud": False, "verify_iss": False})
        except jwt.InvalidTokenError:
            return "Invalid JWT Signature."
        now, iat, exp = time.time(), claims.get("iat"), claims.get("exp")
        numbers = all(type(v) in (int, float) for v in (iat, exp))  # not bool, not missing
        if not numbers or abs(now - iat) > 120 or exp <= now or exp - iat > 3600:
            return BAD_TIMES
        if claims.get("iss") != state.args.email:
            return "Invalid grant: iss %r is not the service account %s" % (claims.get("iss"), state.args.email)
        if claims.get("aud") not in state.audiences:
            return "Invalid grant: aud %r is not this token endpoint" % (claims.get("aud"),)
        if claims.get("scope") != WALLET_SCOPE:
            return "Invalid grant: scope %r is not %s" % (claims.get("scope"), WALLET_SCOPE)
        return None

    def bearer_ok(self):
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        with self.server.state.lock:
            expiry = self.server.state.tokens.get(token.strip(), 0)
        valid = scheme.lower() == "bearer" and expiry > time.time()
        self.auth = "ok" if valid else "invalid" if scheme else "missing"
        return valid

    def api(self, body):
        state = self.server.state
        if self.command in ("GET", "PATCH", "PUT"):
            self.object_id = urllib.parse.unquote(self.url_path.rstrip("/").rsplit("/", 1)[-1])
        if not self.bearer_ok():
            return self.send(401, api_error(401, "UNAUTHENTICATED", UNAUTHENTICATED),
                             [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')])
        if self.command not in ("GET", "PATCH", "PUT", "POST"):
            return self.send(404, api_error(404, "NOT_FOUND", "Method not found."))
        if self.command != "GET":
            try:
                payload = json.loads(body.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is one too
                payload = None
            if not isinstance(payload, dict):  # Google wants an object, not any JSON value
                return self.send(400, api_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        if self.command == "POST":
            self.object_id = payload.get("id")
            if not isinstance(self.object_id, str) or not self.object_id:
                self.object_id = None
                return self.send(400, api_error(400, "INVALID_ARGUMENT", "Invalid resource id: missing"))
        oid = self.object_id
        for substring, (once, code, status, message, reason) in SCRIPTED.items():
            if substring in oid and (not once or state.first_failure((substring, oid))):
                extra = [("Retry-After", "1")] if code == 429 else []
                return self.send(code, api_error(code, status, message, reason), extra)
        with state.lock:
            current = state.objects.get(oid, None if "new-" in oid else {"id": oid})
            exists = current is not None
            if self.command == "POST" and not exists:
                current = state.objects[oid] = payload
            elif exists and self.command in ("PATCH", "PUT"):
                # PATCH merges top-level fields, PUT replaces; the id stays the path's.
                current = state.objects[oid] = {**(current if self.command == "PATCH" else {}), **payload, "id": oid}
        if self.command == "POST" and exists:
            return self.send(409, api_error(409, "ALREADY_EXISTS", "Resource already exists: %s" % oid))
        if current is None:
            return self.send(404, api_error(404, "NOT_FOUND", "Resource not found: %s" % oid))
        self.send(200, current)


def run(args):
    unblock_signals()
    os.makedirs(args.log, exist_ok=True)
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]
    server.state = State(args, port)
    for path in args.service_account:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        info["token_uri"] = "http://%s:%d/token" % (args.host, port)
        write_atomically(path, to_json(info))
    port_file = os.path.join(args.log, "port")
    write_atomically(port_file, b"%d\n" % port)
    print("listening on http://%s:%d" % (args.host, port), flush=True)
    serve(server, port_file)


def parse_args():
    p = argparse.ArgumentParser(description="Google OAuth + Wallet API test double for Fanout")
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen", help="write service-account.json, other-service-account.json, public.pem")
    k.add_argument("--out", required=True)
    k.add_argument("--token-uri", required=True, help="e.g. http://127.0.0.1:PORT/token")
    k.add_argument("--email", default=DEFAULT_EMAIL)
    s = sub.add_parser("serve", help="run the token endpoint and the Wallet API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 picks a free port")
    s.add_argument("--public-key", required=True, help="PEM the JWT signatures must verify against")
    s.add_argument("--email", default=DEFAULT_EMAIL, help="the only accepted iss")
    s.add_argument("--log", required=True, help="directory for requests.jsonl, port, token-fail")
    s.add_argument("--service-account", action="append", default=[], metavar="FILE",
                   help="key file whose token_uri is set to this server's /token at start")
    s.add_argument("--token-lifetime", type=int, default=3600, help="seconds an access token stays valid")
    return p.parse_args()


def main():
    args = parse_args()
    keygen(args) if args.command == "keygen" else run(args)


if __name__ == "__main__":
    main()
