#!/usr/bin/python3
"""A real SMTP server for Fanout's tests and demo, on aiosmtpd.

Run it with /usr/bin/python3: Debian's python3-aiosmtpd is not importable by
other interpreters (a pyenv python3 earlier on PATH, say).

    smtp-server.py --host 127.0.0.1 --port 0 --maildir DIR [options]

Everything a test needs to observe is a file in DIR:
  DIR/port              the port actually listened on, written (atomically)
                        once the server accepts connections; removed on exit
  DIR/NNNNNN.eml        the DATA bytes of each accepted message, byte for byte
                        (dot-unstuffed, without the final ".": exactly what the
                        client meant to send; nothing added)
  DIR/NNNNNN.json       {"mail_from", "rcpt_tos", "connection"}; written before
                        the .eml appears, so a test that polls for *.eml can
                        read the .json at once
  DIR/connections.log   one line per accepted TCP connection
  DIR/tempfail-seen, DIR/drop-seen
                        addresses that already had their one failure, so that
                        the "once" behaviours stay "once" across a restart

Behaviour by recipient local part (case-insensitive prefix):
  reject550...        RCPT -> 550 5.1.1 <addr>: Recipient address rejected: User unknown
  defer451...         RCPT -> 451 4.3.0 <addr>: Temporary failure, try again later
  tempfail-once...    first time that address is seen: RCPT 451 as above; then accepted
  drop-in-data-once.. first time: connection cut after the DATA content, before
                      the reply (nothing recorded); then accepted
  reject-data554...   end of DATA -> 554 5.7.1 Message rejected as spam
  anything else       250 2.0.0 Ok: queued as N

Options for session-level failures: --silent (never greets), --refuse-greeting
(greets with 554 and hangs up), --auth USER:PASS
(AUTH PLAIN/LOGIN required; wrong credentials get 535 5.7.8), --tls-cert/--tls-key
(offer STARTTLS), --implicit-tls (TLS from the first byte), --close-before-mail
(greets, answers EHLO, hangs up at MAIL FROM).
"""

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import socket
import ssl
import struct
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult

# aiosmtpd warns that AUTH without TLS is insecure; on loopback, for tests,
# that is the point (the product must also work with plaintext AUTH).
warnings.filterwarnings("ignore", message=".*Requiring AUTH while not requiring TLS.*")

MAX_MESSAGE_BYTES = 50 * 1024 * 1024


def write_atomically(path, data):
    """Readers poll for files: they must never see one half written."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.tmp.%d" % (name, os.getpid()))
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def local_part(address):
    return address.rpartition("@")[0].lower() if "@" in address else address.lower()


class OnceSet:
    """Addresses whose one-time failure already happened, in memory and on disk.

    On disk because tests restart the server (to simulate a restart of the
    real thing) and the retry that follows must then succeed.
    """

    def __init__(self, path):
        self.path = path
        self.seen = set()
        try:
            with open(path, encoding="utf-8") as f:
                self.seen = {line.strip() for line in f if line.strip()}
        except FileNotFoundError:
            pass

    def first_time(self, address):
        key = address.lower()
        if key in self.seen:
            return False
        self.seen.add(key)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        return True


# Seconds handle_DATA waits before accepting a message (--delay).
DATA_DELAY = 0.0


class Maildir:
    def __init__(self, directory):
        self.directory = directory
        # Continue numbering after what is already there: a restarted server
        # must not overwrite messages a test is about to look at.
        numbers = [
            int(m.group(1))
            for name in os.listdir(directory)
            for m in [re.fullmatch(r"(\d+)\.(eml|json)", name)]
            if m
        ]
        self.next_message = max(numbers, default=0) + 1
        try:
            with open(os.path.join(directory, "connections.log"), "rb") as f:
                self.connections = sum(1 for _ in f)
        except FileNotFoundError:
            self.connections = 0

    def data_delay(self):
        """--delay, or the number in the maildir's `delay` file: a test slows the server mid-run."""
        try:
            with open(os.path.join(self.directory, "delay"), encoding="utf-8") as f:
                return float(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return DATA_DELAY

    def new_connection(self, note):
        self.connections += 1
        with open(os.path.join(self.directory, "connections.log"), "a", encoding="utf-8") as f:
            f.write("%d %s %s\n" % (self.connections, time.strftime("%Y-%m-%dT%H:%M:%S"), note))
        return self.connections

    def store(self, envelope, connection):
        number = self.next_message
        self.next_message += 1
        base = os.path.join(self.directory, "%06d" % number)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "connection": connection,
            "received_at": time.time(),
        }
        write_atomically(base + ".json", json.dumps(meta, indent=1).encode("utf-8") + b"\n")
        write_atomically(base + ".eml", envelope.original_content)
        return number


class Handler:
    def __init__(self, maildir, tempfail_seen, drop_seen, close_before_mail):
        self.maildir = maildir
        self.tempfail_seen = tempfail_seen
        self.drop_seen = drop_seen
        self.close_before_mail = close_before_mail

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.close_before_mail:
            # Session-level failure: the product must treat this as "server
            # unusable", not as a failure of the message.
            server.transport.close()
            await asyncio.sleep(3600)  # cancelled by connection_lost
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = local_part(address)
        if local.startswith("reject550"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith("defer451"):
            return "451 4.3.0 <%s>: Temporary failure, try again later" % address
        if local.startswith("tempfail-once") and self.tempfail_seen.first_time(address):
            return "451 4.3.0 <%s>: Temporary failure, try again later" % address
        if local.startswith("throttle-once") and self.tempfail_seen.first_time(address):
            # Postfix's answer to a sender over its rate: a throttle, not a refusal.
            return "450 4.7.1 <%s>: Error: too much mail from 127.0.0.1" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        drops = [a for a in envelope.rcpt_tos if local_part(a).startswith("drop-in-data-once")]
        # Evaluate every address (no short-circuit) so each is marked seen.
        if drops and any([self.drop_seen.first_time(a) for a in drops]):
            # Cut the connection the hard way (RST, no reply to the final
            # "."): the client cannot know whether the message was taken.
            sock = server.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            server.transport.abort()
            await asyncio.sleep(3600)  # cancelled by connection_lost
        if any(local_part(a).startswith("reject-data554") for a in envelope.rcpt_tos):
            return "554 5.7.1 Message rejected as spam"
        delay = self.maildir.data_delay()
        if delay > 0:
            # A slow server, so tests can act while a batch is still being delivered.
            await asyncio.sleep(delay)
        number = self.maildir.store(envelope, getattr(server, "connection_number", 0))
        return "250 2.0.0 Ok: queued as %d" % number


    async def handle_exception(self, error):
        # One line instead of aiosmtpd's traceback: failed TLS handshakes are
        # what the certificate tests provoke on purpose.
        cause = error.__cause__ or error
        logging.getLogger("smtp-server").warning("session error: %s: %s", type(cause).__name__, cause)
        return "500 Error: (%s) %s" % (type(error).__name__, error)


class QuietKnownNoise(logging.Filter):
    """aiosmtpd repeats these for every connection of an --auth server."""

    NOISE = ("auth_required == True but auth_require_tls == False", "Session.login_data is deprecated")

    def filter(self, record):
        return not any(n in record.getMessage() for n in self.NOISE)


class FanoutSMTP(SMTP):
    def __init__(self, handler, connection_number, advertise_auth, **kwargs):
        super().__init__(handler, **kwargs)
        self.connection_number = connection_number
        self.advertise_auth = advertise_auth

    async def push(self, status):
        # aiosmtpd always offers AUTH (with its always-failing default) once
        # TLS is up; a server configured without --auth should not offer it.
        if not self.advertise_auth:
            text = status if isinstance(status, str) else status.decode("ascii", "replace")
            if text.startswith("250-AUTH"):
                return
        await super().push(status)


class SilentProtocol(asyncio.Protocol):
    """Accepts the connection and then says nothing, ever (timeout tests)."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        pass


class RefusingProtocol(asyncio.Protocol):
    """Greets with 554 (no SMTP service here) and hangs up, as a server refusing everyone."""

    def connection_made(self, transport):
        transport.write(b"554 5.3.2 No SMTP service here\r\n")
        transport.close()


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def parse_args():
    p = argparse.ArgumentParser(description="SMTP test server for Fanout")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--maildir", required=True)
    p.add_argument("--silent", action="store_true", help="accept TCP connections but never send anything")
    p.add_argument("--refuse-greeting", action="store_true", help="greet every connection with 554 and hang up")
    p.add_argument("--auth", metavar="USER:PASS", help="require AUTH PLAIN/LOGIN with these credentials")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (needs --tls-cert/--tls-key)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before accepting each message")
    p.add_argument("--close-before-mail", action="store_true", help="hang up when MAIL FROM arrives")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.implicit_tls and not args.tls_cert:
        p.error("--implicit-tls needs --tls-cert and --tls-key")
    if args.auth and ":" not in args.auth:
        p.error("--auth takes USER:PASS")
    return args


async def serve(args):
    os.makedirs(args.maildir, exist_ok=True)
    maildir = Maildir(args.maildir)
    handler = Handler(
        maildir,
        OnceSet(os.path.join(args.maildir, "tempfail-seen")),
        OnceSet(os.path.join(args.maildir, "drop-seen")),
        args.close_before_mail,
    )
    ctx = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None

    smtp_kwargs = dict(
        data_size_limit=MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=True,
        decode_data=False,  # keep the bytes as received: tests compare them
        hostname="smtp.fanout.test",  # not socket.getfqdn(): that may do a slow DNS lookup
        ident="Fanout test SMTP",
    )
    if ctx is not None and not args.implicit_tls:
        smtp_kwargs["tls_context"] = ctx
    if args.auth:
        user, _, password = args.auth.partition(":")
        expected = (user.encode("utf-8"), password.encode("utf-8"))

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login, auth_data.password) == expected
            return AuthResult(success=ok, handled=False)

        smtp_kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,  # plaintext AUTH on loopback is what the tests use
        )
    else:
        smtp_kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]

    loop = asyncio.get_running_loop()

    # asyncio calls the factory once per accepted TCP connection (before any
    # TLS handshake; STARTTLS reuses the protocol), which is exactly what
    # connections.log must count.
    def factory():
        number = maildir.new_connection("silent" if args.silent else "refused" if args.refuse_greeting else "smtp")
        if args.silent:
            return SilentProtocol()
        if args.refuse_greeting:
            return RefusingProtocol()
        return FanoutSMTP(handler, number, bool(args.auth), loop=loop, **smtp_kwargs)

    server = await loop.create_server(
        factory,
        host=args.host,
        port=args.port,
        ssl=ctx if args.implicit_tls else None,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    port_file = os.path.join(args.maildir, "port")
    write_atomically(port_file, b"%d\n" % port)
    print("smtp-server: listening on %s:%d, maildir %s" % (args.host, port, args.maildir), file=sys.stderr, flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        # A stale port file would make the next waiter connect to nobody.
        try:
            with open(port_file, "rb") as f:
                if f.read().strip() == b"%d" % port:
                    os.unlink(port_file)
        except FileNotFoundError:
            pass


def main():
    args = parse_args()
    # A parent may start us with SIGTERM blocked (Foundation's Process does, from a test
    # runner's thread): unblock it, or `terminate()` would never reach us.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    global DATA_DELAY
    DATA_DELAY = args.delay
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").addFilter(QuietKnownNoise())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
