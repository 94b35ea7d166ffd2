"""The shared vocabulary: enums keep the text they had as strings, one set of live states."""

from __future__ import annotations

import json

import pytest

from corral.domain.models import HostHealth, RequestStatus, TimingKind
from corral.domain.states import ACTIVE_STATES, DESTROY_INTENT_STATES, LIVE_STATES, PowerState, VmState


@pytest.mark.parametrize(("member", "text"), [
    (HostHealth.GREEN, "green"),
    (HostHealth.YELLOW, "yellow"),
    (HostHealth.RED, "red"),
    (HostHealth.GRAY, "gray"),
    (RequestStatus.PENDING, "pending"),
    (RequestStatus.READY, "ready"),
    (RequestStatus.FAILED, "failed"),
    (RequestStatus.DELETED, "deleted"),
    (TimingKind.CLONE, "clone"),
    (TimingKind.BOOT, "boot"),
    (VmState.MIGRATING, "migrating"),
    (PowerState.BOOTING, "booting"),
])
def test_a_member_reads_and_compares_as_its_text(member: str, text: str) -> None:
    assert member == text and str(member) == text and f"{member}" == text
    assert json.dumps({"x": member}) == json.dumps({"x": text})
    assert type(member)(text) is member


@pytest.mark.parametrize(("reported", "health"), [
    ("green", HostHealth.GREEN),
    ("yellow", HostHealth.YELLOW),
    ("red", HostHealth.RED),
    ("gray", HostHealth.GRAY),
    ("", HostHealth.GRAY),
    (None, HostHealth.GRAY),
    ("purple", HostHealth.GRAY),
])
def test_host_health_of_an_endpoints_status(reported: str | None, health: HostHealth) -> None:
    assert HostHealth.of(reported) is health


@pytest.mark.parametrize(("state", "live"), [
    (VmState.PENDING, True),
    (VmState.READY, True),
    (VmState.RUNNING, True),
    (VmState.MIGRATING, True),
    (VmState.COMPLETED, False),
    (VmState.FAILED, False),
    (VmState.DISCOVERED, False),
    (VmState.DESTROYED, False),
])
def test_live_states(state: VmState, live: bool) -> None:
    assert (state in LIVE_STATES) is live
    assert not live or (state in ACTIVE_STATES and state not in DESTROY_INTENT_STATES)
