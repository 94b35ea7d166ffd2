"""A real OpenLDAP slapd for the LDAP tests: throwaway config, own CA, loopback ports.

Directory (suffix ``dc=corral,dc=test``)::

    ou=people   uid=alice (alice-secret), uid=carol ({SSHA} carol-secret),
                cn=dave (no uid attribute; dave-secret),
                uid=twin (twin-1) and cn=twin2 with uid=twin (twin-2): an ambiguous name,
                uid=bob (another bob, password bob-in-people): found before staff's bob
    ou=staff    uid=bob (bob-secret): the only entry there
    ou=system   cn=service (service-secret): may read (search) everything; nobody else may

slapd listens on ``ldap://127.0.0.1:<port>`` (StartTLS offered) and
``ldaps://127.0.0.1:<tls_port>``; its certificate names ``127.0.0.1`` and ``corral-ldap.test``
(not ``localhost``) and is signed by ``ca_file``; ``other_ca_file`` signed nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
MODULES = "/usr/lib/ldap"
SCHEMA = "/etc/ldap/schema"
SUFFIX = "dc=corral,dc=test"
SERVICE_DN = f"cn=service,ou=system,{SUFFIX}"
PASSWORDS = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
    "dave": "dave-secret",
    "service": "service-secret",
}
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Slapd:
    host: str
    port: int
    tls_port: int
    ca_file: str
    other_ca_file: str
    suffix: str = SUFFIX
    service_dn: str = SERVICE_DN


def _ssha(password: str) -> str:
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _make_certs(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    for name in ("ca", "other-ca"):
        _run(["openssl", "req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
              "-subj", f"/CN=corral test {name}", *ca_ext], d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:corral-ldap.test\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _run(["openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=corral-ldap.test"], d)
    _run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
          "-out", "server.pem", "-days", "2", "-extfile", "server.ext"], d)


def _slapd_conf(d: Path) -> str:
    return f"""\
include {SCHEMA}/core.schema
include {SCHEMA}/cosine.schema
include {SCHEMA}/inetorgperson.schema
include {SCHEMA}/nis.schema
modulepath {MODULES}
moduleload back_mdb
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key

database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
directory {d}/db
sizelimit 100
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE_DN}" read
    by self read
    by anonymous auth
    by * none
"""


def _person(rdn: str, ou: str, password: str, *, uid: str | None = None, cn: str | None = None) -> str:
    lines = [f"dn: {rdn},ou={ou},{SUFFIX}", "objectClass: inetOrgPerson"]
    if uid:
        lines.append(f"uid: {uid}")
    lines += [f"cn: {cn or uid}", f"sn: {cn or uid}", f"userPassword: {password}", ""]
    return "\n".join(lines)


def _ldif() -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: corral\ndc: corral\n",
        *(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n" for ou in ("people", "staff", "system")),
        _person("uid=alice", "people", PASSWORDS["alice"], uid="alice"),
        _person("uid=carol", "people", _ssha(PASSWORDS["carol"]), uid="carol"),
        _person("cn=dave", "people", PASSWORDS["dave"], cn="dave"),
        _person("uid=twin", "people", "twin-1", uid="twin"),
        _person("cn=twin2", "people", "twin-2", uid="twin", cn="twin2"),
        _person("uid=bob", "people", "bob-in-people", uid="bob"),
        _person("uid=bob", "staff", PASSWORDS["bob"], uid="bob"),
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: service\nuserPassword: {PASSWORDS['service']}\n",
    ]
    return "\n".join(parts)


def _wait_listening(proc: subprocess.Popen[bytes], ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(
                f"slapd exited with {proc.returncode} while starting; stderr:\n{log.read_text()[-4000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.2):
                pending.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"slapd did not accept connections on 127.0.0.1:{pending[0]} within {START_TIMEOUT:.0f} s; "
                f"stderr:\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.02)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    missing = [p for p in (SLAPD, SLAPADD) if not os.access(p, os.X_OK)] + [
        tool for tool in ("openssl",) if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(
            f"the LDAP tests need OpenLDAP's slapd and openssl; missing: {', '.join(missing)}. "
            "Install the packages in scripts/system-packages.txt (apt-get install slapd ldap-utils openssl).",
            pytrace=False,
        )
    d = tmp_path_factory.mktemp("slapd")
    (d / "db").mkdir()
    _make_certs(d)
    (d / "slapd.conf").write_text(_slapd_conf(d))
    (d / "data.ldif").write_text(_ldif())
    _run([SLAPADD, "-f", str(d / "slapd.conf"), "-l", str(d / "data.ldif")], d)

    proc, port, tls_port = _start(d)
    try:
        yield Slapd(host="127.0.0.1", port=port, tls_port=tls_port,
                    ca_file=str(d / "ca.pem"), other_ca_file=str(d / "other-ca.pem"))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(d: Path, attempts: int = 3) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start slapd on two free loopback ports; retried if a port was taken meanwhile."""
    for attempt in range(attempts):
        port, tls_port = _free_port(), _free_port()
        urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
        log = d / "slapd.log"
        with log.open("wb") as err:
            # -d 32768 ("none"): stay in the foreground (no fork) and write to stderr only what is
            # always logged (errors); no -u/-g, so running as root is fine.
            proc = subprocess.Popen([SLAPD, "-f", str(d / "slapd.conf"), "-h", urls, "-d", "32768"],
                                    stdout=subprocess.DEVNULL, stderr=err, cwd=d)
        try:
            _wait_listening(proc, [port, tls_port], log)
        except RuntimeError:
            if attempt + 1 < attempts and "Address already in use" in log.read_text():
                continue
            raise
        return proc, port, tls_port
    raise AssertionError("unreachable")
