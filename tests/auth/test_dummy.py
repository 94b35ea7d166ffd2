from __future__ import annotations

from corral.auth import Authenticator, DummyAuthenticator, build_authenticator
from corral.auth.settings import AuthSettings


async def test_password_must_differ_from_user_name() -> None:
    auth = build_authenticator(AuthSettings(provider="dummy")).backend
    assert isinstance(auth, DummyAuthenticator) and isinstance(auth, Authenticator)
    assert await auth.authenticate("alice", "anything")
    assert await auth.authenticate("alice", "")  # as vmpooler: only "differs from the user name" counts
    assert not await auth.authenticate("alice", "alice")
    assert not await auth.authenticate("", "x")  # a token needs an owner
    assert not await auth.authenticate(None, "x")  # type: ignore[arg-type]
