"""What a libvirt error means to corral: its kind, whether retrying may mend it, whether the
host's connection must be reopened, and a message a person can read.

libvirt reports an error as a code (``virErrorNumber``) and a text. The codes are written out
here as plain numbers, so that deciding needs no libvirt. Some codes carry several meanings
that only the text tells apart: a failed operation (9) may say that something already exists,
a system error (38) that the connection broke or that a disk is full.

A message names the host (by the name corral gives it, never its URI), the operation and its
subject, what went wrong, and libvirt's own words with any URI and user name in them left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from corral.providers.base import Cause

__all__ = ["CAUSES", "Fault", "FaultKind", "classify", "scrub"]

# libvirt's virErrorNumber values (virterror.h)
INTERNAL_ERROR = 1
NO_SUPPORT = 3
UNKNOWN_HOST = 4
NO_CONNECT = 5
INVALID_CONN = 6
OPERATION_FAILED = 9
XML_ERROR = 27
DOM_EXIST = 28
OPERATION_DENIED = 29
XML_DETAIL = 35
NETWORK_EXIST = 37
SYSTEM_ERROR = 38
RPC = 39
GNUTLS_ERROR = 40
NO_DOMAIN = 42
AUTH_FAILED = 45
NO_STORAGE_POOL = 49
NO_STORAGE_VOL = 50
OPERATION_INVALID = 55
CONFIG_UNSUPPORTED = 67
OPERATION_TIMEOUT = 68
NO_DOMAIN_SNAPSHOT = 72
ARGUMENT_UNSUPPORTED = 74
AUTH_CANCELLED = 79
NO_DOMAIN_METADATA = 80
OPERATION_UNSUPPORTED = 84
SSH = 85
AGENT_UNRESPONSIVE = 86
ACCESS_DENIED = 88
STORAGE_VOL_EXIST = 90
XML_INVALID_SCHEMA = 92
AUTH_UNAVAILABLE = 94
LIBSSH = 98

FaultKind = Literal["not_found", "duplicate", "bad_xml", "invalid", "unsupported", "connection", "no_snapshot",
                    "no_space", "denied", "timeout", "other"]

BY_CODE: dict[int, FaultKind] = {
    NO_DOMAIN: "not_found", NO_STORAGE_POOL: "not_found", NO_STORAGE_VOL: "not_found",
    NO_DOMAIN_METADATA: "not_found",
    NO_DOMAIN_SNAPSHOT: "no_snapshot",
    DOM_EXIST: "duplicate", NETWORK_EXIST: "duplicate", STORAGE_VOL_EXIST: "duplicate",
    XML_ERROR: "bad_xml", XML_DETAIL: "bad_xml", XML_INVALID_SCHEMA: "bad_xml",
    OPERATION_INVALID: "invalid",
    NO_SUPPORT: "unsupported", ARGUMENT_UNSUPPORTED: "unsupported", OPERATION_UNSUPPORTED: "unsupported",
    CONFIG_UNSUPPORTED: "unsupported",
    NO_CONNECT: "connection", INVALID_CONN: "connection", RPC: "connection", UNKNOWN_HOST: "connection",
    GNUTLS_ERROR: "connection", SSH: "connection", LIBSSH: "connection",
    AUTH_FAILED: "denied", AUTH_CANCELLED: "denied", AUTH_UNAVAILABLE: "denied", OPERATION_DENIED: "denied",
    ACCESS_DENIED: "denied",
    OPERATION_TIMEOUT: "timeout", AGENT_UNRESPONSIVE: "timeout",
}

# codes whose text decides: the connection broke, or something already exists
VAGUE = (INTERNAL_ERROR, OPERATION_FAILED, SYSTEM_ERROR)
DUPLICATE_WORDS = ("already exists", "already defined")  # a name taken; a UUID taken by another name
# what libvirt's RPC layer says when the connection itself broke; a failure to reach something
# else (a migration's peer, a guest's console) says "connection refused" and is not one of these
CONNECTION_WORDS = ("cannot recv data", "cannot write data", "end of file while reading", "client socket is closed",
                    "broken pipe", "keepalive", "connection reset by peer")
GUEST_CHANNELS = ("monitor", "agent")  # a guest's channel that broke, not the host's connection
NO_SPACE_WORDS = ("no space left", "not enough space", "disk quota exceeded")

RETRYABLE: dict[FaultKind, bool] = {
    "not_found": False, "duplicate": False, "bad_xml": False, "invalid": False, "unsupported": False,
    "no_snapshot": False, "denied": False,
    "connection": True, "timeout": True, "other": True,
    "no_space": True,  # another host may have room
}

#: the cause each kind is counted under (see corral.providers.base.Cause); a lost connection is the
#: host's fault (``host``), not the endpoint's: each libvirt host is an endpoint of its own, so its
#: breaker must count it
CAUSES: dict[FaultKind, Cause] = {
    "not_found": Cause.NOT_FOUND, "no_snapshot": Cause.NOT_FOUND,
    "duplicate": Cause.REFUSED, "bad_xml": Cause.REFUSED, "invalid": Cause.REFUSED, "unsupported": Cause.REFUSED,
    "denied": Cause.REFUSED, "no_space": Cause.REFUSED,
    "connection": Cause.HOST, "timeout": Cause.TIMEOUT, "other": Cause.OTHER,
}

REASONS: dict[FaultKind, str] = {
    "not_found": "it does not exist",
    "duplicate": "it already exists",
    "bad_xml": "its XML is not valid",
    "invalid": "not possible in its current state",
    "unsupported": "the host's libvirt driver does not support it",
    "connection": "the connection to the host is lost",
    "no_snapshot": "there is no such snapshot",
    "no_space": "no space left",
    "denied": "access denied",
    "timeout": "it timed out",
    "other": "",
}

URI = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*?(?=[.,:;)]*(?:[\s'\"]|$))")  # less trailing punctuation
USER_AT = re.compile(r"\b[A-Za-z0-9_.-]+@(?=[A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class Fault:
    """A libvirt error as corral acts on it."""

    kind: FaultKind
    message: str  # readable: names the operation and the object, and libvirt's own words
    retryable: bool
    connection_lost: bool  # the host's connection must be reopened

    @property
    def cause(self) -> Cause:
        return CAUSES[self.kind]


def scrub(text: str) -> str:
    """libvirt's text without URIs or user names (``qemu+ssh://root@kvm1/system``, ``root@kvm1``)."""
    return USER_AT.sub("", URI.sub("<URI>", text)).strip()


def kind_of(code: int, text: str) -> FaultKind:
    lower = text.lower()
    if any(word in lower for word in NO_SPACE_WORDS):
        return "no_space"
    if code in BY_CODE:
        return BY_CODE[code]
    if code in VAGUE:
        if any(word in lower for word in DUPLICATE_WORDS):
            return "duplicate"
        if any(word in lower for word in CONNECTION_WORDS) and not any(word in lower for word in GUEST_CHANNELS):
            return "connection"
    return "other"


def classify(code: int, text: str, *, operation: str, subject: str, host: str) -> Fault:
    """What libvirt's error ``code`` with ``text`` means for ``operation`` on ``subject`` at ``host``.

    ``operation`` is a verb ("define", "start"), ``subject`` what it works on: a single word is
    quoted as a name ("p-abc" -> 'p-abc'), several words are used as given ("domain 'p-abc'",
    "the connection"); an empty subject is left out. E.g. "libvirt host 'host1': cannot define domain 'p-abc': it
    already exists (operation failed: domain 'p-abc' already exists with uuid ...)"."""
    kind = kind_of(code, text)
    what = repr(subject) if subject and not any(mark in subject for mark in " '\"") else subject
    action = " ".join(part for part in (operation, what) if part)
    words = scrub(text)
    reason = REASONS[kind]
    detail = f"{reason} ({words})" if reason and words else reason or words or f"libvirt error {code}"
    return Fault(
        kind=kind,
        message=f"libvirt host {host!r}: cannot {action}: {detail}",
        retryable=RETRYABLE[kind],
        connection_lost=kind == "connection",
    )
