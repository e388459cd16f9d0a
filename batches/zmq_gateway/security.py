"""Where the gateway may listen, and with which key.

ZeroMQ has no users of its own: whoever reaches the request socket can queue and cancel jobs
(as the gateway's --user), and whoever reaches the PUB socket reads every prompt in the queue.
So the sockets bind to this machine only (127.0.0.1, ::1, localhost, ipc://, inproc://) unless
a key guards them:

- --curve-secret-key FILE: CurveZMQ on both sockets (encrypted, and a client must know the
  server's public key; with --curve-clients DIR only the public keys in DIR may connect);
- --require-token: every request must carry a valid API token. That guards requests only, so a
  PUB address off this machine still needs CURVE.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

LOCAL_TRANSPORTS = ("ipc://", "inproc://")
_TCP = re.compile(r"^tcp://(?:(?P<iface>[^;]*);)?(?P<host>\[[^\]]*\]|[^:\[\]]*):(?P<port>[0-9]+|\*)$")


class SecurityError(ValueError):
    """A configuration the gateway refuses to start with; the message names the flag to add."""


def is_loopback(endpoint: str) -> bool:
    """True when only this machine can connect to `endpoint` (a ZeroMQ bind address)."""
    if endpoint.startswith(LOCAL_TRANSPORTS):
        return True
    match = _TCP.match(endpoint)
    if not match:
        return False
    host = match.group("host").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: may reach the network
        return False


@dataclass(frozen=True)
class Curve:
    public: bytes
    secret: bytes
    clients_dir: Path | None  # None: any client that knows the server's public key


def load_curve(secret_file: str | None, clients_dir: str | None) -> Curve | None:
    """The server's key pair from a zmq.auth secret key file (zmq.auth.create_certificates)."""
    if not secret_file:
        if clients_dir:
            raise SecurityError("--curve-clients needs --curve-secret-key FILE (the server's key)")
        return None
    import zmq
    import zmq.auth

    if not zmq.has("curve"):
        raise SecurityError("--curve-secret-key: this libzmq was built without CURVE support")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"--curve-secret-key: cannot read {secret_file!r} ({exc}); make one with "
                            "python -c \"import zmq.auth; zmq.auth.create_certificates('.', 'server')\"") from None
    if not secret:
        raise SecurityError(f"--curve-secret-key: {secret_file!r} holds a public key only; "
                            "give the .key_secret file")
    folder = None
    if clients_dir:
        folder = Path(clients_dir)
        if not folder.is_dir():
            raise SecurityError(f"--curve-clients: {clients_dir!r} is not a folder of client public keys")
    return Curve(public=public, secret=secret, clients_dir=folder)


def check_binding(*, rep: str, pub: str, curve: Curve | None, require_token: bool) -> None:
    """Refuse an address off this machine that no key guards; the message names the flag."""
    for flag, address in (("--rep", rep), ("--pub", pub)):
        if "://" not in address or (address.startswith("tcp://") and not _TCP.match(address)):
            raise SecurityError(f"{flag}: {address!r} is not a ZeroMQ address; write it like "
                                "tcp://127.0.0.1:5555 or ipc:///run/dgx/requests")
    if not is_loopback(rep) and curve is None and not require_token:
        raise SecurityError(f"--rep {rep} is reachable from other machines: add --require-token "
                            "(every request must carry an API token) or --curve-secret-key FILE, "
                            "or bind to 127.0.0.1")
    if not is_loopback(pub) and curve is None:
        raise SecurityError(f"--pub {pub} is reachable from other machines and every subscriber would "
                            "read every prompt: add --curve-secret-key FILE, or bind to 127.0.0.1")


def apply_curve(context, sockets, curve: Curve):
    """Make `sockets` CURVE servers; returns the ZAP authenticator to stop at shutdown."""
    import zmq
    import zmq.auth
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context)
    auth.start()
    location = str(curve.clients_dir) if curve.clients_dir else zmq.auth.CURVE_ALLOW_ANY
    auth.configure_curve(domain="*", location=location)
    for sock in sockets:
        sock.curve_secretkey = curve.secret
        sock.curve_publickey = curve.public
        sock.curve_server = True
    return auth
