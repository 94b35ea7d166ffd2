"""vcsim, VMware's vCenter simulator, as a child process for the vSphere tests and benchmark.

The binary is built from ``tools/vcsim/main.go`` with Debian's Go and govmomi packages
(``make vcsim``, which ``make test`` runs); ``CORRAL_VCSIM`` may name another one.
:class:`Vcsim` starts it on a free loopback port, and an observer session of its own lets a
test or benchmark look at the vCenter from outside corral: count sessions, end them, make
templates.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from corral.providers.probe import tcp_reachable

ROOT = Path(__file__).resolve().parents[3]
BINARY = ROOT / "build" / "vcsim"
SOURCE = ROOT / "tools" / "vcsim"
GOPATH = "/usr/share/gocode"


class VcsimUnavailable(RuntimeError):
    """vcsim cannot be built or started here; the message says what is missing."""


def binary() -> Path:
    """The vcsim binary, built first if it is missing or older than its source."""
    override = os.environ.get("CORRAL_VCSIM")
    if override:
        return Path(override)
    source = SOURCE / "main.go"
    if BINARY.exists() and BINARY.stat().st_mtime >= source.stat().st_mtime:
        return BINARY
    if shutil.which("go") is None:
        raise VcsimUnavailable("vcsim needs Go: apt-get install golang-go golang-github-vmware-govmomi-dev "
                               "(make test installs them)")
    if not Path(GOPATH, "src/github.com/vmware/govmomi/simulator").is_dir():
        raise VcsimUnavailable("vcsim needs govmomi: apt-get install golang-github-vmware-govmomi-dev")
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off",
           "GOCACHE": os.environ.get("GOCACHE", str(ROOT / "build" / "gocache"))}
    done = subprocess.run(["go", "build", "-o", str(BINARY), "."], cwd=SOURCE, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise VcsimUnavailable(f"building vcsim failed:\n{done.stderr.strip()}")
    return BINARY


class Vcsim:
    """One vcsim process: ``clusters`` × ``hosts`` hosts, ``vms`` VMs per resource pool.

    ``delays`` maps vSphere method names to milliseconds added to each call of them.
    """

    user = "user"
    password = "pass"

    def __init__(self, *, clusters: int = 1, hosts: int = 3, vms: int = 0,
                 delays: dict[str, int] | None = None) -> None:
        args = [str(binary()), "-cluster", str(clusters), "-host", str(hosts), "-vm", str(vms)]
        if delays:
            args += ["-method-delay", ",".join(f"{m}={ms}" for m, ms in delays.items())]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line:
            self.process.kill()
            raise VcsimUnavailable("vcsim exited before printing its URL")
        url = urlparse(line)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self._observer: Any = None

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The ``:providers:`` entry of a vSphere provider on this vcsim."""
        return {"provider_class": "vsphere", "server": self.host, "port": self.port, "protocol": "http",
                "username": self.user, "password": self.password, **extra}

    def connect(self) -> Any:
        """A new pyvmomi session (the caller logs it out)."""
        from pyVim.connect import SmartConnect

        return SmartConnect(protocol="http", host=self.host, port=self.port, user=self.user, pwd=self.password)

    @property
    def observer(self) -> Any:
        """This object's own session, used to look at the vCenter from outside."""
        if self._observer is None:
            self._observer = self.connect()
        return self._observer

    @property
    def content(self) -> Any:
        return self.observer.RetrieveContent()

    def sessions(self) -> list[str]:
        """The keys of every open session except the observer's."""
        manager = self.content.sessionManager
        mine = manager.currentSession.key
        return [s.key for s in manager.sessionList if s.key != mine]

    def terminate_sessions(self) -> int:
        """End every session but the observer's, as an administrator would; returns how many."""
        keys = self.sessions()
        if keys:
            self.content.sessionManager.TerminateSession(sessionId=keys)
        return len(keys)

    def hosts(self) -> list[str]:
        from pyVmomi import vim

        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.HostSystem], True)
        try:
            return sorted(h.name for h in view.view)
        finally:
            view.DestroyView()

    def vm_names(self) -> set[str]:
        """The names of every VM (templates not among them), as the vCenter has them now."""
        from pyVmomi import vim, vmodl

        spec = vmodl.query.PropertyCollector
        content = self.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            found = content.propertyCollector.RetrieveContents([spec.FilterSpec(
                objectSet=[spec.ObjectSpec(obj=view, skip=True, selectSet=[
                    spec.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)])],
                propSet=[spec.PropertySpec(type=vim.VirtualMachine, pathSet=["name", "config.template"])])])
        finally:
            view.DestroyView()
        names = set()
        for item in found or []:
            props = {p.name: p.val for p in item.propSet or []}
            if not props.get("config.template"):
                names.add(props["name"])
        return names

    def vm(self, name: str) -> Any:
        from pyVmomi import vim, vmodl

        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.VirtualMachine], True)
        try:
            for vm in view.view:
                try:
                    if vm.name == name:
                        return vm
                except vmodl.fault.ManagedObjectNotFound:  # deleted meanwhile
                    continue
            return None
        finally:
            view.DestroyView()

    def make_template(self, path: str = "Templates/corral-template", *, snapshot: str | None = "base",
                      memory_mb: int = 512, cpus: int = 1) -> None:
        """Create a template at ``path`` (below DC0's VM folder), with a snapshot for linked clones."""
        from pyVmomi import vim

        content = self.content
        datacenter = content.rootFolder.childEntity[0]
        folder = datacenter.vmFolder
        *folders, name = path.strip("/").split("/")
        for part in folders:
            folder = next((f for f in folder.childEntity if isinstance(f, vim.Folder) and f.name == part), None) \
                or folder.CreateFolder(part)
        cluster = datacenter.hostFolder.childEntity[0]
        config = vim.vm.ConfigSpec(
            name=name, memoryMB=memory_mb, numCPUs=cpus, guestId="otherGuest64",
            files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"),
            deviceChange=[vim.vm.device.VirtualDeviceSpec(
                operation="add", device=vim.vm.device.ParaVirtualSCSIController(key=1000, busNumber=0,
                                                                                sharedBus="noSharing"))],
        )
        vm = wait_task(folder.CreateVM_Task(config=config, pool=cluster.resourcePool, host=cluster.host[0]))
        if snapshot:
            wait_task(vm.CreateSnapshot_Task(name=snapshot, memory=False, quiesce=False))
        vm.MarkAsTemplate()

    def close(self) -> None:
        if self._observer is not None:
            try:
                self._observer.content.sessionManager.Logout()
            except Exception:
                pass
            self._observer = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Listener:
    """A TCP listener on loopback standing in for the guests' sshd (vcsim runs no guests).

    :meth:`probe` is a readiness probe for a vSphere provider: it records the address it was
    asked to connect to (``asked``: "name.domain:22" or "ip:22") and connects here instead.
    """

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.asked: list[str] = []

    async def start(self) -> None:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def probe(self, address: str, port: int, timeout: float) -> bool:
        self.asked.append(f"{address}:{port}")
        return await tcp_reachable("127.0.0.1", self.port, timeout)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class SessionWatch:
    """A thread that counts vcsim's sessions (the observer's not among them) every ``interval``.

    ``counts`` keeps every sample, ``peak`` the highest, ``errors`` the samples that failed.
    """

    def __init__(self, sim: Vcsim, interval: float = 0.05) -> None:
        self.sim = sim
        self.interval = interval
        self.peak = 0
        self.counts: list[int] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vcsim-sessions", daemon=True)

    def start(self) -> SessionWatch:
        self.sim.sessions()  # the observer logs in now, not during the run
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                count = len(self.sim.sessions())
            except Exception:  # the run goes on; a missed sample is counted
                self.errors += 1
            else:
                self.counts.append(count)
                self.peak = max(self.peak, count)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        return self.peak


def wait_task(task: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while task.info.state not in ("success", "error"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"vcsim task {task} did not finish")
        time.sleep(0.02)
    if task.info.state == "error":
        raise RuntimeError(f"vcsim task failed: {task.info.error}")
    return task.info.result
