"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) on loopback for the network tests.

:class:`Orthanc` writes a temporary configuration (free loopback ports,
``RemoteAccessAllowed: false``, the DICOMweb plugin, the called AE title
checked, PocketPACS's listener as modality ``pocket`` for C-MOVE and for
pushes), starts its own process with ``TCP_NODELAY=1`` (a system service the
package may have started is never used), waits for ``/system`` and stops it
afterwards.  Its REST API uploads, lists, pushes and deletes instances.
The fixtures skip when Orthanc or the plugin is missing (fail under CI=true).

For the fault tests: :class:`Relay` (a loopback TCP relay that forwards real
DIMSE or HTTP bytes at a set rate, or stops forwarding while keeping the
connection open), :class:`Mute` (a port that accepts connections and never
answers), the ``own_orthanc`` fixture (an Orthanc of one test, which it may
kill) with :class:`KillAt` and :func:`kill_midway_then_retry` (a retrieve
during which Orthanc is killed, then the retry), and the checks the
retrieve tests share (:func:`check_same_as_orthanc`, :func:`check_private`).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import require_system

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AET = "ORTHANC"
POCKET_AET = "POCKETPACS"


def dcmtk_tool(name: str) -> str | None:
    """The path of DCMTK's *name* (``storescu``, ``getscu``, ``movescu``) on PATH, or None.

    pynetdicom installs Python scripts of the same names (``movescu`` ...)
    into the environment's ``bin``, which comes first on PATH when the
    environment is activated; those take other options, so a script (a file
    starting with ``#!``) is passed over for the program behind it.
    """
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            try:
                with open(p, "rb") as f:
                    if f.read(2) == b"#!":
                        continue
            except OSError:
                continue
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_orthanc() -> None:
    require_system(os.path.exists(ORTHANC), "Orthanc (apt-get install orthanc)")
    require_system(os.path.exists(DICOMWEB_PLUGIN), "Orthanc's DICOMweb plugin (apt-get install orthanc-dicomweb)")


class Orthanc:
    """One Orthanc process of our own (see the module docstring)."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None):
        """*users*: user -> password, for an Orthanc asking for HTTP basic authentication."""
        self.folder = folder
        self.auth = next(iter(users.items())) if users else None
        self.http_port, self.dicom_port, self.pocket_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        conf = {"Name": "pocketpacs-test", "StorageDirectory": str(folder / "db"),
                "IndexDirectory": str(folder / "db"), "Plugins": [DICOMWEB_PLUGIN],
                "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": AET,
                "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
                "DicomModalities": {"pocket": [POCKET_AET, "127.0.0.1", self.pocket_port]},
                "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpTimeout": 60}
        if users:
            conf.update({"AuthenticationEnabled": True, "RegisteredUsers": users})
        (folder / "orthanc.json").write_text(json.dumps(conf))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "TCP_NODELAY": "1"}
        self.log = open(self.folder / "orthanc.log", "ab")
        self.proc = subprocess.Popen([ORTHANC, str(self.folder / "orthanc.json")], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Orthanc exited at start: " + (self.folder / "orthanc.log").read_text()[-2000:])
            try:
                self.rest("/system")
                return
            except OSError:
                time.sleep(0.2)
        self.kill()  # never leave a process behind
        raise RuntimeError("Orthanc did not answer /system within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._close_log()

    def _close_log(self) -> None:
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
            self.log = None

    def kill(self) -> None:
        """SIGKILL (a server that dies mid-transfer)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        self._close_log()

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> object:
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if self.auth:
            import base64

            req.add_header("Authorization", "Basic " + base64.b64encode(":".join(self.auth).encode()).decode())
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
        return json.loads(body) if body else None

    def upload(self, paths: list[Path]) -> None:
        for p in paths:
            self.rest("/instances", p.read_bytes(), "POST")

    def clear(self) -> None:
        for pid in self.rest("/patients"):
            self.rest(f"/patients/{pid}", method="DELETE")

    def sop_uids(self) -> dict[str, str]:
        """SOP Instance UID -> Orthanc's instance id."""
        out = {}
        for iid in self.rest("/instances"):
            tags = self.rest(f"/instances/{iid}/simplified-tags")
            out[tags["SOPInstanceUID"]] = iid
        return out

    def file(self, iid: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/instances/{iid}/file", timeout=60) as r:
            return r.read()

    def push_to_pocket(self, resources: list[str]) -> object:
        """Orthanc sends instances (ids) to the ``pocket`` modality (C-STORE)."""
        return self.rest("/modalities/pocket/store", json.dumps(resources).encode(), "POST")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running Orthanc shared by the session (tests clear it as they need)."""
    require_orthanc()
    o = Orthanc(tmp_path_factory.mktemp("orthanc"))
    o.start()
    yield o
    o.stop()


def pixel_bytes(data: bytes) -> bytes:
    """The Pixel Data value of a Part-10 file's bytes (encapsulated or native), as stored."""
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    return ds.PixelData


def synth_files(folder: Path, **kw) -> list[Path]:
    """A small synthetic archive (pocketpacs.synth), its DICOM files."""
    from pocketpacs.synth import generate

    opts = dict(patients=1, studies=1, series=2, slices=4, rows=32, cols=32, junk=0, enhanced=0, nested=False,
                compressed_fraction=0.5, implicit_fraction=0.25, seed=7)
    opts.update(kw)
    generate(folder, **opts)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")


# ---------------------------------------------------------------- what the retrieve tests share
def add_nodes(archive_dir: Path, o: Orthanc) -> None:
    """Nodes ``get`` (C-GET), ``move`` (C-MOVE to ``o.pocket_port``) and ``web`` (DICOMweb) of *o*."""
    from pocketpacs.net.nodes import RemoteNode, save_node

    save_node(archive_dir, RemoteNode("get", "dimse", aet=AET, host="127.0.0.1", port=o.dicom_port))
    save_node(archive_dir, RemoteNode("move", "dimse", aet=AET, host="127.0.0.1", port=o.dicom_port,
                                      retrieve="move", move_port=o.pocket_port))
    save_node(archive_dir, RemoteNode("web", "dicomweb", url=o.dicomweb))


def archived_files(ar) -> dict[str, str]:
    """SOP Instance UID -> file, of every archived instance."""
    out = {}
    for p in ar.patients():
        for st in ar.studies(p):
            for se in ar.series(st):
                for i in ar.instances(se):
                    out[i.sop_instance_uid] = i.paths[0]
    return out


def check_same_as_orthanc(ar, o: Orthanc) -> None:
    """The archive holds exactly Orthanc's SOP Instance UIDs, pixel data byte for byte."""
    held = o.sop_uids()
    files = archived_files(ar)
    assert set(files) == set(held)
    for sop, iid in held.items():
        assert pixel_bytes(Path(files[sop]).read_bytes()) == pixel_bytes(o.file(iid)), sop


def check_private(folder: Path) -> None:
    """Folders 0700, files 0600 named by hashed UIDs only."""
    for root, _dirs, names in os.walk(folder):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for n in names:
            assert stat.S_IMODE(os.stat(os.path.join(root, n)).st_mode) == 0o600
            assert n.endswith(".dcm") and len(n) == 36  # hashed UIDs only


# ---------------------------------------------------------------- an Orthanc killed mid-retrieve
@pytest.fixture
def own_orthanc(tmp_path):
    """An Orthanc of this test alone, started (the test may kill it and start it again); stopped at the end."""
    require_orthanc()
    (tmp_path / "orthanc").mkdir()
    o = Orthanc(tmp_path / "orthanc")
    o.start()
    try:
        yield o
    finally:
        o.stop()


@pytest.fixture(scope="session")
def kill_series(tmp_path_factory) -> list[Path]:
    """120 uncompressed 64x64 instances of one series: long enough to kill Orthanc in the middle."""
    return synth_files(tmp_path_factory.mktemp("kill"), series=1, slices=120, rows=64, cols=64,
                       compressed_fraction=0.0)


class KillAt:
    """A ``progress`` callback that kills Orthanc *o* once *at* instances have arrived (``killed`` says it did)."""

    def __init__(self, o: Orthanc, at: int):
        self.o, self.at = o, at
        self.killed = threading.Event()

    def __call__(self, done: int, total: int) -> None:
        if done >= self.at and not self.killed.is_set():
            self.killed.set()
            self.o.kill()


def kill_midway_then_retry(o: Orthanc, archive_dir: Path, node: str, at: int = 30, **get_kw):
    """Retrieve the one study *o* holds by *node*, killing *o* once *at* instances have arrived:
    a partial result (every missing instance ``not_received``, what arrived indexed, nothing
    half-written); then *o* is started again and the same retrieve fetches only the rest.

    Returns
    -------
    RetrieveResult
        The partial retrieve (for the test to check its ``problem``).
    """
    import pocketpacs
    import pocketpacs.net  # gives Archive.remote

    n = len(o.sop_uids())
    with pocketpacs.open_archive(archive_dir) as ar:
        pacs = ar.remote(node)
        study = pacs.find()[0]["study_instance_uid"]
        killer = KillAt(o, at)
        res = pacs.get(study, progress=killer, **get_kw)
        assert killer.killed.is_set()
        assert not res.complete and res.problem and not res.cancelled
        assert at <= res.received < n and res.indexed == res.received
        assert {f["reason"] for f in res.failed} == {"not_received"}
        assert len(res.failed) == n - res.received
        assert not list((archive_dir / "store-incoming").iterdir())  # nothing half-written
        store = {os.path.realpath(p) for p in (archive_dir / "store").rglob("*") if p.is_file()}
        assert store == {os.path.realpath(p) for p in archived_files(ar).values()}  # each file whole and indexed
        o.start()
        again = pacs.get(study, **get_kw)
        assert again.complete and again.already == res.received and again.received == n - res.received
        check_same_as_orthanc(ar, o)
    return res


# ---------------------------------------------------------------- a slow, a stalled and a mute peer
class Relay:
    """A loopback TCP relay to ``127.0.0.1:port``: a slow or stalling peer made of a real one.

    Parameters
    ----------
    port : int
        Where it forwards to (Orthanc's DICOM or HTTP port, or our own C-MOVE listener).
    rate : int, optional
        Bytes/s each way (None: as fast as it goes); its sockets have small
        buffers, so that the sender feels the pace as on a thin link.
    stall_after : int, optional
        Stop forwarding (both ways, connections kept open) once that many
        bytes came from the side *count* names.
    listen_port : int, optional
        The port it listens on (default: a free one, ``port`` attribute).
    count : {"server", "client"}
        Whose bytes ``stall_after`` counts: those from ``port`` (``"server"``)
        or those to it.

    ``stall()`` / ``resume()`` by hand; ``stalled`` tells whether it holds
    back now; ``forwarded`` counts the bytes it passed on (both ways);
    ``close()`` ends every connection.
    """

    def __init__(self, port: int, rate: int | None = None, stall_after: int | None = None,
                 listen_port: int = 0, count: str = "server"):
        self.target = ("127.0.0.1", port)
        self.rate = rate
        self.stall_after = stall_after
        self.count = count
        self.counted = 0
        self.forwarded = 0
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.closed = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port just left by another
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # inherited by accepted sockets
        self.lsock.bind(("127.0.0.1", listen_port))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def stalled(self) -> bool:
        return not self.forwarding.is_set()

    def stall(self) -> None:
        self.forwarding.clear()

    def resume(self) -> None:
        self.stall_after = None
        self.forwarding.set()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            up = socket.socket()
            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            try:
                up.connect(self.target)
            except OSError:
                client.close()
                up.close()
                continue
            with self._lock:
                self._socks += [client, up]
            threading.Thread(target=self._pump, args=(client, up, self.count == "client"), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, self.count == "server"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        chunk = 4096 if self.rate is None else max(512, min(4096, self.rate // 20))
        due = time.monotonic()
        try:
            while True:
                data = src.recv(chunk)
                if not data:
                    break
                if counted and self.stall_after is not None:
                    with self._lock:
                        self.counted += len(data)
                        if self.counted >= self.stall_after:
                            self.forwarding.clear()
                while not self.forwarding.wait(0.05):
                    if self.closed:
                        return
                if self.rate:
                    due = max(due, time.monotonic()) + len(data) / self.rate
                    time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(data)
                with self._lock:
                    self.forwarded += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.forwarding.set()
        try:  # wakes the accept() (a close alone leaves the port listening while accept() waits)
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Mute:
    """A loopback port that accepts connections (the kernel's handshake) and never answers a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)   # never accept()ed: connections wait in the backlog, requests unread
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Mute":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
