"""SCRAM-SHA-256 secrets for PgBouncer's userlist, so that it never holds a password.

PgBouncer 1.18 authenticates its clients against a secret ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:
<ServerKey>`` (RFC 5802/7677) and then logs in to the server with the client key it recovered from
the client's proof ("SCRAM pass-through"). That works only when the secret is the server's own: the
same salt and iteration count as the role's entry in pg_authid. Reading pg_authid needs a superuser,
so bbperf asks the server instead: the first message of a SCRAM exchange names the salt and the
iteration count, and the secret follows from them and the password (``server_secret``). A server
that asks no password (trust) gets a secret with a fresh random salt; a server that wants md5 or a
clear-text password is refused, since PgBouncer could then log in only with the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import socket
import ssl
import struct
import unicodedata
from dataclasses import dataclass

from bbperf.errors import ConfigError, ServerError

ITERATIONS = 4096  # PostgreSQL's scram_iterations default
_SSL_REQUEST = 80877103
_PROTOCOL_3 = 196608
_AUTH_OK, _AUTH_CLEARTEXT, _AUTH_MD5, _AUTH_SASL, _AUTH_SASL_CONTINUE = 0, 3, 5, 10, 11


def _saslprep(password: str) -> bytes:
    """The bytes PostgreSQL hashes: ASCII as is; otherwise spaces mapped, mapped-to-nothing
    characters dropped and NFKC applied (the common part of SASLprep, RFC 4013)."""
    if password.isascii():
        return password.encode()
    mapped = "".join(
        " " if unicodedata.category(c) == "Zs" else c
        for c in password
        if c not in "\u00ad\u034f\u1806\u180b\u180c\u180d\u200b\u200c\u200d\u2060\ufe00\ufeff"
    )
    return unicodedata.normalize("NFKC", mapped).encode()


def scram_secret(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores for ``password`` with ``salt`` (pure)."""
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def random_scram_secret(password: str) -> str:
    """A secret for ``password`` with a fresh 16-byte salt (for clients only: no server login)."""
    return scram_secret(password, secrets.token_bytes(16))


def parse_server_first(message: str) -> tuple[bytes, int]:
    """Salt and iteration count from a SCRAM server-first-message ``r=…,s=…,i=…`` (pure)."""
    fields = dict(part.split("=", 1) for part in message.split(",") if "=" in part)
    try:
        return base64.b64decode(fields["s"]), int(fields["i"])
    except (KeyError, ValueError) as exc:
        raise ServerError(f"unreadable SCRAM server-first-message ({exc})") from None


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to ask: ``host`` is a name, an address or a socket directory."""

    host: str
    port: int
    user: str
    database: str
    sslmode: str = "prefer"

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


def server_secret(endpoint: Endpoint, password: str, timeout_s: float = 5.0) -> str:
    """The server's own SCRAM secret for ``endpoint.user``: salt and iterations from the server's
    first SCRAM message, the keys from ``password``. A server that trusts the user gets a random
    salt. md5 or clear-text auth raises ConfigError (PgBouncer would need the password)."""
    method, server_first = _first_challenge(endpoint, timeout_s)
    if method == _AUTH_OK:
        return random_scram_secret(password)
    if method != _AUTH_SASL_CONTINUE:
        kind = {_AUTH_MD5: "md5", _AUTH_CLEARTEXT: "a clear-text password"}.get(method, "")
        raise ConfigError(
            f"{endpoint.describe()} asks for {kind or f'auth method {method}'}, not SCRAM: PgBouncer "
            "would need the password itself in its userlist; set password_encryption = "
            "'scram-sha-256', reset the role's password and use scram-sha-256 in pg_hba.conf"
        )
    salt, iterations = parse_server_first(server_first)
    return scram_secret(password, salt, iterations)


def _first_challenge(endpoint: Endpoint, timeout_s: float) -> tuple[int, str]:
    """Open a connection, start up, answer SASL with a client-first-message and return the
    server's answer (auth code, server-first-message); the connection is then dropped."""
    try:
        sock = _connect(endpoint, timeout_s)
    except OSError as exc:
        raise ServerError(
            f"cannot reach {endpoint.describe()} to read its SCRAM salt: {exc}"
        ) from None
    try:
        params = f"user\0{endpoint.user}\0database\0{endpoint.database}\0\0".encode()
        sock.sendall(struct.pack("!ii", 8 + len(params), _PROTOCOL_3) + params)
        code, body = _read_auth(sock, endpoint)
        if code != _AUTH_SASL:
            return code, ""
        mechanisms = body.split(b"\0")
        if b"SCRAM-SHA-256" not in mechanisms:
            return code, ""
        nonce = base64.b64encode(os.urandom(18)).decode()
        first = f"n,,n=,r={nonce}".encode()
        payload = b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first
        sock.sendall(b"p" + struct.pack("!i", 4 + len(payload)) + payload)
        code, body = _read_auth(sock, endpoint)
        return code, body.decode()
    finally:
        sock.close()


def _connect(endpoint: Endpoint, timeout_s: float) -> socket.socket:
    if endpoint.host.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        sock.connect(f"{endpoint.host}/.s.PGSQL.{endpoint.port}")
        return sock
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    if endpoint.sslmode in ("disable", "allow"):
        return sock
    sock.sendall(struct.pack("!ii", 8, _SSL_REQUEST))
    answer = sock.recv(1)
    if answer == b"S":
        # Only the salt is read over this connection and nothing secret is sent on it.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock)
    if endpoint.sslmode in ("require", "verify-ca", "verify-full"):
        sock.close()
        raise ConfigError(
            f"{endpoint.describe()}: sslmode={endpoint.sslmode} but the server has no SSL"
        )
    return sock


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ServerError("the server closed the connection during authentication")
        data += chunk
    return data


def _read_auth(sock: socket.socket, endpoint: Endpoint) -> tuple[int, bytes]:
    """The next authentication request: (code, rest of the body); an ErrorResponse raises."""
    kind = _read_exact(sock, 1)
    (length,) = struct.unpack("!i", _read_exact(sock, 4))
    body = _read_exact(sock, length - 4)
    if kind == b"E":
        fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
        raise ServerError(f"{endpoint.describe()} refused the connection: {fields.get(b'M', '?')}")
    if kind != b"R":
        raise ServerError(
            f"{endpoint.describe()} answered {kind!r} where authentication was expected"
        )
    (code,) = struct.unpack("!i", body[:4])
    return code, body[4:]
