"""HaSettings: the defaults, what is derived from them, and the refusals, each naming the problem."""

from __future__ import annotations

from typing import Any

import pytest

from corral.ha.settings import HaSettings


def test_defaults_and_what_follows_from_them() -> None:
    s = HaSettings(manager_id="corral-1")
    assert (s.ttl_s, s.renew_every_s, s.safety, s.score_threshold) == (5.0, 1.0, 0.6, 50)
    assert s.trusted_s == pytest.approx(3.0)
    assert s.io_timeout_s == pytest.approx(2.0)
    assert s.ttl_ms == 5000


REFUSED = [
    ({"manager_id": " "}, "manager_id is empty"),
    ({"ttl_s": 0}, "ttl_s must be above 0"),
    ({"safety": 1.0}, "safety must lie strictly between 0 and 1"),
    ({"safety": 0}, "safety must lie strictly between 0 and 1"),
    ({"renew_every_s": 3.0}, r"renew_every_s \(3.0 s\) must be above 0 and below ttl_s \* safety \(3.000 s\)"),
    ({"renew_every_s": 0}, "renew_every_s"),
    ({"score_threshold": 101}, "score_threshold must lie in 0..100"),
]


@pytest.mark.parametrize(("change", "message"), REFUSED, ids=[str(r[0]) for r in REFUSED])
def test_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HaSettings(**({"manager_id": "corral-1"} | change))
