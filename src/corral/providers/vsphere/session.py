"""One session per vCenter, shared by every pool and task of the process.

pyvmomi is blocking, so calls run on a pool of ``concurrency`` threads: that is the bound on
calls in flight. Every call goes through :meth:`Session.call`. A call that fails with
``NotAuthenticated`` (the session expired or was terminated) logs in again on the same
connection and is retried once; concurrent calls that fail together log in once (the login
is single-flight, keyed by a generation number). When no call went out for
``keepalive_interval`` seconds, ``CurrentTime`` keeps the session alive. :meth:`close` logs
out. The password never leaves this module: errors name the server and user only.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pyVim.connect import SmartConnect
from pyVmomi import vim, vmodl

from corral.providers.base import Cause, ProviderError
from corral.providers.vsphere.causes import cause_of
from corral.providers.vsphere.settings import VsphereSettings

log = logging.getLogger("corral.providers.vsphere")
T = TypeVar("T")


class Session:
    """The shared, self-healing session to one vCenter."""

    def __init__(self, name: str, settings: VsphereSettings) -> None:
        self.name = name
        self.settings = settings
        self.si: Any = None  # vim.ServiceInstance once open
        self.content: Any = None
        self.generation = 0  # bumped by every login; a call remembers the one it ran under
        self.logins = 0
        self.relogins = 0
        self.keepalives = 0
        self.calls: Counter[str] = Counter()
        self.in_flight = 0  # calls running on the session's threads now
        self.peak_in_flight = 0
        self._count_lock = threading.Lock()
        self.last_call = time.monotonic()
        self._login_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def open(self) -> bool:
        return self.si is not None and not self._closed

    def describe(self) -> str:
        s = self.settings
        return f"{s.protocol}://{s.server}:{s.effective_port} as {s.username}"

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self.open:
            return
        self._closed = False
        self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix=f"vsphere-{self.name}")
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._first_login)
        except BaseException:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"vsphere-keepalive-{self.name}")
        log.info("vSphere session open", extra={"provider": self.name, "endpoint": self.describe()})

    def _first_login(self) -> None:
        s = self.settings
        context = None
        if s.protocol == "https" and s.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            si = SmartConnect(
                protocol=s.protocol,
                host=s.server,
                port=s.effective_port,
                user=s.username,
                pwd=s.password.get_secret_value(),
                sslContext=context,
                httpConnectionTimeout=s.call_timeout,
            )
        except vim.fault.InvalidLogin as exc:
            raise ProviderError(f"vSphere {self.describe()}: login refused (wrong user name or password)",
                                retryable=False, cause=Cause.REFUSED) from exc
        except Exception as exc:  # socket errors, TLS errors, SOAP faults: name the endpoint, not the secret
            raise ProviderError(f"vSphere {self.describe()}: cannot connect ({type(exc).__name__}: "
                                f"{_safe(exc, s)})", cause=cause_of(exc)) from exc
        self.si = si
        self.content = si.RetrieveContent()
        self.generation += 1
        self.logins += 1
        self.last_call = time.monotonic()

    async def close(self) -> None:
        """Log out and stop the threads. Calls still queued are cancelled. Idempotent."""
        if self._closed or self._pool is None:
            return
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        pool, self._pool = self._pool, None
        if self.si is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(pool, self.content.sessionManager.Logout)
            except Exception as exc:  # already gone: nothing to log out of
                log.debug("vSphere logout failed", extra={"provider": self.name, "error": type(exc).__name__})
        pool.shutdown(wait=False, cancel_futures=True)
        self.si = None
        log.info("vSphere session closed", extra={"provider": self.name})

    # -- calls -----------------------------------------------------------------------------

    async def call(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (blocking pyvmomi code) on the session's threads.

        ``label`` names the vSphere method for :attr:`calls`, the count of calls per method.
        """
        if self._pool is None or self._closed:
            raise ProviderError(f"vSphere provider {self.name!r} is not connected", cause=Cause.SESSION)
        self.calls[label] += 1
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.invoke, fn, *args)

    def invoke(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on this thread; log in again and retry once when the session was lost."""
        seen = self.generation
        self.last_call = time.monotonic()
        with self._count_lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return fn(*args)
        except vim.fault.NotAuthenticated:
            if self._closed:
                raise
            self.relogin(seen)
            return fn(*args)
        finally:
            with self._count_lock:
                self.in_flight -= 1

    def relogin(self, seen: int) -> bool:
        """Log in again unless another thread already did since generation ``seen``.

        True when this call logged in. Logging in on the same connection keeps every managed
        object reference valid; only objects that belonged to the old session (property
        collectors, views) are gone, and their owners rebuild them.
        """
        with self._login_lock:
            if self.generation != seen or self._closed:
                return False
            s = self.settings
            try:
                self.content.sessionManager.Login(userName=s.username, password=s.password.get_secret_value())
            except vim.fault.InvalidLogin as exc:
                raise ProviderError(f"vSphere {self.describe()}: login refused on re-login", retryable=False,
                                    cause=Cause.SESSION) from exc
            self.generation += 1
            self.logins += 1
            self.relogins += 1
            log.warning("vSphere session was lost; logged in again",
                        extra={"provider": self.name, "endpoint": self.describe()})
            return True

    async def _keep_alive(self) -> None:
        interval = self.settings.keepalive_interval
        while True:
            idle = time.monotonic() - self.last_call
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            try:
                await self.call("CurrentTime", lambda: self.si.CurrentTime())
                self.keepalives += 1
            except Exception as exc:
                log.warning("vSphere keepalive failed", extra={"provider": self.name, "error": type(exc).__name__})
                await asyncio.sleep(min(interval, 30))


def fault_message(exc: BaseException) -> str:
    """A readable one-line message of a vSphere fault or other error."""
    if isinstance(exc, vmodl.MethodFault):
        msg = getattr(exc, "msg", None) or ""
        faults = [getattr(m, "message", "") for m in getattr(exc, "faultMessage", []) or []]
        text = msg or "; ".join(f for f in faults if f)
        return f"{type(exc).__name__.split('.')[-1]}: {text}" if text else type(exc).__name__.split(".")[-1]
    return f"{type(exc).__name__}: {exc}"


def _safe(exc: BaseException, settings: VsphereSettings) -> str:
    text = str(exc)
    secret = settings.password.get_secret_value()
    return text.replace(secret, "***") if secret else text
