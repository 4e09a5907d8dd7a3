"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) on loopback for the network tests.

:class:`Orthanc` writes a temporary configuration (free loopback ports,
``RemoteAccessAllowed: false``, the DICOMweb plugin, the called AE title
checked, PocketPACS's listener as modality ``pocket`` for C-MOVE and for
pushes), starts its own process with ``TCP_NODELAY=1`` (a system service the
package may have started is never used), waits for ``/system`` and stops it
afterwards.  Its REST API uploads, lists, pushes and deletes instances.
The fixtures skip when Orthanc or the plugin is missing (fail under CI=true).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import require_system

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AET = "ORTHANC"
POCKET_AET = "POCKETPACS"


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
