"""The ``ldap`` provider, as vmpooler does it, with ldap3 (blocking; run in a worker thread).

Without a service account, for each base in ``base`` and each attribute in ``user_object``
(in that order) a simple bind as ``{user_object}={user},{base}`` is tried with the user's
password; the first bind that succeeds accepts the user.

With ``service_account_hash``, for each (base, attribute) pair: bind as the service account,
search ``base`` (subtree) for ``({attribute}={user})``; no entry: next pair; more than one
entry: refused (ambiguous, False); exactly one: bind as that DN with the user's password.
A DN already tried is not tried again. If the service account itself cannot bind, that is a
configuration problem, not a wrong user password: :class:`AuthUnavailable` is raised.

Safety:

* an empty password is refused before anything is sent (an LDAP simple bind with a DN and
  an empty password is an *unauthenticated* bind, and servers answer it with success);
  so are empty user names, user names with control characters or leading/trailing blanks;
* the user name is escaped for DNs (RFC 4514) and for filters (RFC 4515): ``bob,ou=x``,
  ``*`` or ``a)(uid=*`` are looked up literally;
* referrals are never chased (they would carry the user's password to another server).

Encryption (``encryption: {method, tls_options}``), default ``start_tls`` as in vmpooler:

* ``plain``: no TLS; ``simple_tls``: LDAPS from the first byte; ``start_tls``: StartTLS on
  the plain port before any bind.
* ``tls_options``:

  - ``verify_mode``: ``peer`` (default, always, with or without ``ca_file``): the server
    certificate must chain to a trusted CA **and** name ``host`` (DNS or IP SAN);
    ``none``: no verification at all (testing only). Ruby's ``0``/``1`` and
    ``VERIFY_NONE``/``VERIFY_PEER`` are accepted too.
  - ``ca_file`` (PEM bundle) / ``ca_path`` (hashed directory): the CAs to trust; without
    either, the system trust store.
  - ``ssl_version``: pins the protocol like Ruby's ``ssl_version=`` (``TLSv1_2``,
    ``TLSv1_3``, ``TLSv1_1``, ``TLSv1``; ``_client`` suffix allowed; ``SSLv23``/``TLS``:
    negotiate). Default: negotiate, TLS 1.2 or newer (Python's default).
  - ``ciphers``: an OpenSSL cipher string.
  - other keys are ignored with a warning.

Bad settings (unknown method, bad ``ssl_version``, missing ``ca_file``, a base that is not a
DN, an attribute that is not an attribute name) raise ValueError when the authenticator is
built. ``timeout`` is the connect timeout and the receive timeout of each operation (the
receive timeout is rounded up to whole seconds; ldap3 needs an integer).

Outcomes: a refused bind (invalid credentials, no such entry, bad DN…) is ``False``; an
unreachable server, a TLS failure, a busy/unavailable server, a failed service bind or a
failed search raise :class:`AuthUnavailable` naming ``host:port`` (never a password).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import ssl
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from corral.auth.base import AuthUnavailable
from corral.auth.settings import LdapEncryption, LdapSettings

__all__ = ["LdapAuthenticator", "build_tls_context"]

log = logging.getLogger("corral.auth")

# Result codes meaning "the server cannot answer now" rather than "no".
_UNAVAILABLE = {3: "timeLimitExceeded", 11: "adminLimitExceeded", 51: "busy", 52: "unavailable", 80: "other"}
_SEARCH_OK = {0, 4, 32}  # success, sizeLimitExceeded (>1 entries), noSuchObject (base absent)
_ATTRIBUTE_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

_VERIFY_MODES = {
    "peer": ssl.CERT_REQUIRED, "verify_peer": ssl.CERT_REQUIRED, "1": ssl.CERT_REQUIRED,
    "none": ssl.CERT_NONE, "verify_none": ssl.CERT_NONE, "0": ssl.CERT_NONE,
}
_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1_1": ssl.TLSVersion.TLSv1_1,
    "tlsv1_2": ssl.TLSVersion.TLSv1_2,
    "tlsv1_3": ssl.TLSVersion.TLSv1_3,
    "sslv23": None,
    "tls": None,
}
_KNOWN_TLS_OPTIONS = {"verify_mode", "ca_file", "ca_path", "ssl_version", "ciphers"}


def build_tls_context(encryption: LdapEncryption) -> ssl.SSLContext | None:
    """The client TLS context for ``encryption`` (None for ``plain``); ValueError if invalid."""
    if encryption.method == "plain":
        return None
    if encryption.method not in ("simple_tls", "start_tls"):
        raise ValueError("auth.ldap.encryption.method: must be simple_tls, start_tls or plain, "
                         f"got {encryption.method!r}")
    opts: dict[str, Any] = {str(k).lstrip(":"): v for k, v in encryption.tls_options.items()}
    where = "auth.ldap.encryption.tls_options"
    unknown = sorted(set(opts) - _KNOWN_TLS_OPTIONS)
    if unknown:
        log.warning("ldap tls_options ignored", extra={"keys": ",".join(unknown)})

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname=True, CERT_REQUIRED
    raw_mode = str(opts.get("verify_mode", "peer")).strip().lower()
    if raw_mode not in _VERIFY_MODES:
        raise ValueError(f"{where}.verify_mode: must be 'peer' or 'none', got {opts['verify_mode']!r}")
    if _VERIFY_MODES[raw_mode] == ssl.CERT_NONE:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca_file, ca_path = opts.get("ca_file"), opts.get("ca_path")
        if ca_file or ca_path:
            try:
                ctx.load_verify_locations(cafile=ca_file or None, capath=ca_path or None)
            except (OSError, ssl.SSLError) as exc:
                what = "ca_file" if ca_file else "ca_path"
                raise ValueError(
                    f"{where}.{what}: cannot load CA certificates from {ca_file or ca_path!r}: {exc}"
                ) from None
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)

    if opts.get("ssl_version") is not None:
        key = str(opts["ssl_version"]).strip().lower().removesuffix("_client")
        if key not in _VERSIONS:
            raise ValueError(
                f"{where}.ssl_version: must be one of TLSv1, TLSv1_1, TLSv1_2, TLSv1_3, SSLv23, "
                f"got {opts['ssl_version']!r}"
            )
        version = _VERSIONS[key]
        if version is not None:
            try:
                ctx.minimum_version = version
                ctx.maximum_version = version
            except (ValueError, ssl.SSLError) as exc:
                raise ValueError(f"{where}.ssl_version: {opts['ssl_version']!r} is not available here: {exc}") from None
    if opts.get("ciphers"):
        try:
            ctx.set_ciphers(str(opts["ciphers"]))
        except ssl.SSLError:
            raise ValueError(f"{where}.ciphers: no usable cipher in {opts['ciphers']!r}") from None
    return ctx


class _ContextTls(ldap3.Tls):
    """ldap3's Tls, but wrapping with our SSLContext (proper hostname/IP check, pinned versions)."""

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        super().__init__(validate=context.verify_mode)
        self._context = context
        self._server_hostname = server_hostname

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=self._server_hostname,
        )


def _acceptable_user(user: Any) -> bool:
    return (
        isinstance(user, str) and bool(user) and user == user.strip()
        and not _CONTROL_RE.search(user)
    )


class LdapAuthenticator:
    def __init__(self, settings: LdapSettings) -> None:
        for i, base in enumerate(settings.base):
            try:
                if not parse_dn(base):
                    raise ValueError("empty")
            except Exception:
                raise ValueError(f"auth.ldap.base[{i}]: not a distinguished name: {base!r}") from None
        for i, attr in enumerate(settings.user_object):
            if not _ATTRIBUTE_RE.match(attr):
                raise ValueError(f"auth.ldap.user_object[{i}]: not an attribute name: {attr!r}")
        self._settings = settings
        self._method = settings.encryption.method
        self._tls = build_tls_context(settings.encryption)
        host = settings.host
        self.server = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
        self._receive_timeout = max(1, math.ceil(settings.timeout))

    async def authenticate(self, user: str, password: str) -> bool:
        if not _acceptable_user(user) or not isinstance(password, str) or not password:
            return False  # before any bind: an empty password would be an unauthenticated bind
        return await asyncio.to_thread(self._authenticate, user, password)

    # -- blocking part, in a worker thread ---------------------------------------------------
    def _authenticate(self, user: str, password: str) -> bool:
        stage = "connect"
        conn = self._connection()
        try:
            conn.open(read_server_info=False)
            if self._method == "start_tls":
                stage = "StartTLS"
                if not conn.start_tls(read_server_info=False):
                    raise AuthUnavailable(f"LDAP server {self.server}: StartTLS failed", server=self.server)
            stage = "bind"
            if self._settings.service_account_hash is None:
                return self._direct_binds(conn, user, password)
            return self._service_flow(conn, user, password)
        except (LDAPException, OSError) as exc:  # OSError: ssl/socket errors ldap3 did not wrap
            raise AuthUnavailable(
                f"LDAP server {self.server} unreachable or failing during {stage}: "
                f"{type(exc).__name__}: {self._scrub(str(exc), password)}",
                server=self.server,
            ) from None
        finally:
            conn.password = None
            try:
                conn.unbind()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def _scrub(self, text: str, password: str) -> str:
        """Belt and braces: a library message should never hold a password, but make sure."""
        text = text[:300]
        account = self._settings.service_account_hash
        for secret in (password, account.password.get_secret_value() if account else ""):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _connection(self) -> ldap3.Connection:
        s = self._settings
        tls = _ContextTls(self._tls, s.host) if self._tls is not None else None
        server = ldap3.Server(
            s.host, port=s.port, use_ssl=self._method == "simple_tls", tls=tls,
            get_info=ldap3.NONE, connect_timeout=s.timeout,
        )
        return ldap3.Connection(
            server, auto_bind=ldap3.AUTO_BIND_NONE, client_strategy=ldap3.SYNC, read_only=True,
            raise_exceptions=False, auto_referrals=False, receive_timeout=self._receive_timeout,
        )

    def _bind(self, conn: ldap3.Connection, dn: str, password: str) -> bool:
        """One simple bind; True/False, or AuthUnavailable if the server cannot answer."""
        if conn.rebind(user=dn, password=password, read_server_info=False):
            return True
        code = (conn.result or {}).get("result")
        if code in _UNAVAILABLE:
            raise AuthUnavailable(f"LDAP server {self.server} answered the bind with {_UNAVAILABLE[code]}",
                                  server=self.server)
        log.debug("ldap bind refused", extra={"server": self.server, "dn": dn, "result": _describe(conn)})
        return False

    def _direct_binds(self, conn: ldap3.Connection, user: str, password: str) -> bool:
        rdn_value = escape_rdn(user)
        for base in self._settings.base:
            for attr in self._settings.user_object:
                if self._bind(conn, f"{attr}={rdn_value},{base}", password):
                    return True
        return False

    def _service_flow(self, conn: ldap3.Connection, user: str, password: str) -> bool:
        account = self._settings.service_account_hash
        assert account is not None
        value = escape_filter_chars(user)
        tried: set[str] = set()
        service_bound = False
        for base in self._settings.base:
            for attr in self._settings.user_object:
                if not service_bound:
                    if not conn.rebind(user=account.user_dn, password=account.password.get_secret_value(),
                                       read_server_info=False):
                        raise AuthUnavailable(
                            f"LDAP service account {account.user_dn!r} cannot bind at {self.server}: {_describe(conn)}",
                            server=self.server,
                        )
                    service_bound = True
                dns = self._search(conn, base, f"({attr}={value})")
                if len(dns) > 1:
                    log.warning("ldap user ambiguous",
                                extra={"server": self.server, "base": base, "attribute": attr, "user": user})
                    return False
                if not dns or dns[0] in tried:
                    continue
                tried.add(dns[0])
                service_bound = False  # the connection is now bound (or not) as someone else
                if self._bind(conn, dns[0], password):
                    return True
        return False

    def _search(self, conn: ldap3.Connection, base: str, search_filter: str) -> list[str]:
        """The DNs found (at most 2: enough to tell 'one' from 'several')."""
        conn.search(
            base, search_filter, search_scope=ldap3.SUBTREE, attributes=[ldap3.NO_ATTRIBUTES],
            size_limit=2, time_limit=self._receive_timeout,
        )
        code = (conn.result or {}).get("result")
        if code not in _SEARCH_OK:
            raise AuthUnavailable(f"LDAP search in {base!r} at {self.server} failed: {_describe(conn)}",
                                  server=self.server)
        return [r["dn"] for r in conn.response or [] if r.get("type") == "searchResEntry"]


def _describe(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    return str(result.get("description") or result.get("result") or "no answer")


