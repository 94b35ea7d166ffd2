"""What a libvirt error means to corral: kind, retrying, the connection, and a readable message."""

from __future__ import annotations

from typing import get_args

import pytest

from corral.providers.base import Cause
from corral.providers.libvirt.errors import CAUSES, FaultKind, classify, scrub
from corral.runner.breaker import blames_host


@pytest.mark.parametrize(("code", "text", "kind", "retryable", "lost"), [
    # what libvirt's test driver answers
    (42, "Domain not found", "not_found", False, False),
    (50, "Storage volume not found: no storage vol with matching name 'nope'", "not_found", False, False),
    (49, "Storage pool not found: no storage pool with matching name 'x'", "not_found", False, False),
    (80, "metadata not found: Requested metadata element is not present", "not_found", False, False),
    (72, "Domain snapshot not found: no domain snapshot with matching name 'base'", "no_snapshot", False, False),
    (9, "operation failed: domain 'p-abc' already exists with uuid 0b0c0d0e-1111-4222-8333-944455556666",
     "duplicate", False, False),
    (9, "operation failed: domain 'test' is already defined with uuid 6695eb01", "duplicate", False, False),
    (9, "operation failed: storage vol already exists", "duplicate", False, False),
    (28, "domain 'x' already exists", "duplicate", False, False),
    (90, "storage volume 'x' exists already", "duplicate", False, False),
    (35, "(domain_definition):1: Premature end of data in tag name line 1", "bad_xml", False, False),
    (27, "XML error: an os <type> must be specified", "bad_xml", False, False),
    (92, "XML document failed to validate against schema", "bad_xml", False, False),
    (55, "Requested operation is not valid: cannot delete inactive domain with 1 snapshots", "invalid", False, False),
    (3, "this function is not supported by the connection driver: virDomainAttachDeviceFlags", "unsupported",
     False, False),
    (74, "argument unsupported: migration is not supported", "unsupported", False, False),
    (84, "Operation not supported: x", "unsupported", False, False),
    (67, "unsupported configuration: x", "unsupported", False, False),
    (8, "unsupported flags (0x4) in function testDomainUndefineFlags", "other", True, False),
    (6, "invalid connection pointer in virConnectListAllDomains", "connection", True, True),
    (5, "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory", "connection",
     True, True),
    (39, "internal error: received hangup event on socket", "connection", True, True),
    (38, "Cannot recv data: Connection reset by peer", "connection", True, True),
    (38, "End of file while reading data: Input/output error", "connection", True, True),
    (38, "Cannot write data: Broken pipe", "connection", True, True),
    (1, "internal error: client socket is closed", "connection", True, True),
    (1, "internal error: connection closed due to keepalive timeout", "connection", True, True),
    (4, "Cannot resolve address kvm1: Name or service not known", "connection", True, True),
    (85, "Cannot recv data: Host key verification failed.", "connection", True, True),
    (38, "cannot open file '/x': Permission denied", "other", True, False),
    # failing to reach something else is not the host's connection breaking
    (9, "operation failed: Failed to connect to remote libvirt URI qemu+tcp://kvm2/system: Connection refused",
     "other", True, False),
    (38, "unable to connect to server at 'kvm2:49152': Connection refused", "other", True, False),
    (1, "internal error: migration closed the socket", "other", True, False),
    (38, "cannot open file '/var/lib/closed/x.qcow2': No such file or directory", "other", True, False),
    (9, "operation failed: job 'x' failed", "other", True, False),
    (1, "internal error: process exited while connecting to monitor", "other", True, False),
    (38, "Unable to read from monitor: Connection reset by peer", "other", True, False),  # the guest's, not ours
    (9, "End of file from qemu monitor", "other", True, False),
    (1, "internal error: Guest agent is not responding: Guest agent disappeared while executing command",
     "other", True, False),
    (45, "authentication failed: Failed to start SASL negotiation", "denied", False, False),
    (88, "access denied: 'domain' denied access", "denied", False, False),
    (29, "operation forbidden: read only access prevents virDomainCreate", "denied", False, False),
    (68, "Timed out during operation: cannot acquire state change lock", "timeout", True, False),
    (86, "Guest agent is not responding", "timeout", True, False),
    (38, "cannot create volume: No space left on device", "no_space", True, False),
    (9, "Not enough space left in storage pool", "no_space", True, False),
    (1, "internal error: something broke", "other", True, False),
    (999, "", "other", True, False),
])
def test_classify(code: int, text: str, kind: str, retryable: bool, lost: bool) -> None:
    fault = classify(code, text, operation="start", subject="domain 'p-abc'", host="host1")
    assert (fault.kind, fault.retryable, fault.connection_lost) == (kind, retryable, lost)


@pytest.mark.parametrize(("code", "text", "operation", "subject", "message"), [
    (9, "operation failed: domain 'p-abc' already exists with uuid 1234", "define", "domain 'p-abc'",
     "libvirt host 'host1': cannot define domain 'p-abc': it already exists "
     "(operation failed: domain 'p-abc' already exists with uuid 1234)"),
    (42, "Domain not found", "define domain", "p-abc",
     "libvirt host 'host1': cannot define domain 'p-abc': it does not exist (Domain not found)"),
    (72, "Domain snapshot not found", "revert", "snapshot 'base' of domain 'p-abc'",
     "libvirt host 'host1': cannot revert snapshot 'base' of domain 'p-abc': there is no such snapshot "
     "(Domain snapshot not found)"),
    (6, "invalid connection pointer", "list domains", "",
     "libvirt host 'host1': cannot list domains: the connection to the host is lost (invalid connection pointer)"),
    (1, "internal error: boom", "start", "p-abc", "libvirt host 'host1': cannot start 'p-abc': internal error: boom"),
    (1, "", "start", "p-abc", "libvirt host 'host1': cannot start 'p-abc': libvirt error 1"),
    (42, "", "destroy", "p-abc", "libvirt host 'host1': cannot destroy 'p-abc': it does not exist"),
    (38, "Cannot recv data: ssh: connect to host kvm1 port 22: Connection refused", "open", "the connection",
     "libvirt host 'host1': cannot open the connection: the connection to the host is lost "
     "(Cannot recv data: ssh: connect to host kvm1 port 22: Connection refused)"),
    (45, "authentication failed: qemu+ssh://root@kvm1/system: Permission denied", "open", "the connection",
     "libvirt host 'host1': cannot open the connection: access denied (authentication failed: <URI>: "
     "Permission denied)"),
])
def test_messages(code: int, text: str, operation: str, subject: str, message: str) -> None:
    assert classify(code, text, operation=operation, subject=subject, host="host1").message == message


@pytest.mark.parametrize(("text", "clean"), [
    ("Failed to connect to qemu+ssh://admin@kvm1.example.net/system?keyfile=/k", "Failed to connect to <URI>"),
    ("unable to open 'qemu+tls://kvm1/system'", "unable to open '<URI>'"),
    ("Cannot recv data: root@kvm1: Permission denied (publickey)", "Cannot recv data: kvm1: Permission denied "
     "(publickey)"),
    ("no route to test:///tmp/h1.xml.", "no route to <URI>."),
    ("(qemu:///system), then", "(<URI>), then"),
    ("Domain not found", "Domain not found"),
    ("  spaced  ", "spaced"),
])
def test_scrub(text: str, clean: str) -> None:
    assert scrub(text) == clean


@pytest.mark.parametrize("text", [
    "Failed to connect to qemu+ssh://admin@kvm1/system",
    "ssh: admin@kvm1: Permission denied",
])
def test_no_user_name_in_messages(text: str) -> None:
    message = classify(38, text, operation="open", subject="the connection", host="kvm1").message
    assert "admin" not in message and "://" not in message


@pytest.mark.parametrize(("code", "text", "cause"), [
    (42, "Domain not found", Cause.NOT_FOUND),
    (72, "Domain snapshot not found", Cause.NOT_FOUND),
    (28, "domain 'x' already exists", Cause.REFUSED),
    (27, "XML error: an os <type> must be specified", Cause.REFUSED),
    (88, "access denied: 'domain' denied access", Cause.REFUSED),
    (38, "cannot create volume: No space left on device", Cause.REFUSED),
    (38, "Cannot recv data: Connection reset by peer", Cause.HOST),
    (5, "Failed to connect socket to '/var/run/libvirt/libvirt-sock'", Cause.HOST),
    (68, "Timed out during operation: cannot acquire state change lock", Cause.TIMEOUT),
    (1, "internal error: something broke", Cause.OTHER),
])
def test_a_fault_is_counted_under_its_cause(code: int, text: str, cause: Cause) -> None:
    fault = classify(code, text, operation="start", subject="p-abc", host="host1")
    assert fault.cause is cause


def test_every_kind_has_a_cause() -> None:
    assert set(CAUSES) == set(get_args(FaultKind))


@pytest.mark.parametrize(("code", "text", "blamed"), [
    (38, "Cannot recv data: Connection reset by peer", True),  # one host's connection lost: its breaker counts it
    (5, "Failed to connect socket to '/var/run/libvirt/libvirt-sock'", True),
    (68, "Timed out during operation: cannot acquire state change lock", True),
    (28, "domain 'x' already exists", True),
])
def test_a_libvirt_hosts_faults_count_against_its_breaker(code: int, text: str, blamed: bool) -> None:
    assert blames_host(classify(code, text, operation="create", subject="p-abc", host="host1").cause) is blamed
