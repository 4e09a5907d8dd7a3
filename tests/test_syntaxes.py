"""Transfer syntax UIDs spelled out where importing pydicom would cost (the
pixel reader's tables, the native parser's byte strings) agree with
``pydicom.uid``; the modules that can afford it use pydicom's constants."""
from __future__ import annotations

import subprocess
import sys

import pydicom.uid as uid

from pocketpacs.dicom import codestreams
from pocketpacs.images import decodeworker, pixelformat
from pocketpacs.native import dicomvr


def test_pixel_tables_match_pydicom():
    assert set(pixelformat.NATIVE_SYNTAXES) | {uid.DeflatedExplicitVRLittleEndian} == set(
        uid.UncompressedTransferSyntaxes)
    assert [ts for ts, big in pixelformat.NATIVE_SYNTAXES.items() if big] == [uid.ExplicitVRBigEndian]
    assert set(decodeworker.SINGLE_THREAD_PLUGIN) == set(uid.JPEG2000TransferSyntaxes)
    assert pixelformat.PixelFormat(rows=1, cols=1).transfer_syntax == uid.ExplicitVRLittleEndian


def test_codestream_syntaxes_are_pydicoms():
    assert codestreams.J2K_SYNTAXES == set(uid.JPEG2000TransferSyntaxes)
    assert codestreams.JPEG_SYNTAXES == set(uid.JPEGTransferSyntaxes) | set(uid.JPEGLSTransferSyntaxes)
    assert not codestreams.J2K_SYNTAXES & set(uid.UncompressedTransferSyntaxes)


def test_native_parser_syntaxes_match_pydicom():
    def spelled(arr) -> str:
        return arr.tobytes().decode("ascii")

    assert spelled(dicomvr._TS_IMPLICIT) == uid.ImplicitVRLittleEndian
    assert spelled(dicomvr._TS_EXPLICIT) == uid.ExplicitVRLittleEndian
    assert spelled(dicomvr._TS_BIG) == uid.ExplicitVRBigEndian
    assert spelled(dicomvr._TS_DEFLATE) == uid.DeflatedExplicitVRLittleEndian
    assert spelled(dicomvr._TS_RLE) == uid.RLELossless
    prefix = spelled(dicomvr._TS_ENCAP_PREFIX)
    assert all(ts.startswith(prefix) for ts in uid.JPEGTransferSyntaxes + uid.JPEG2000TransferSyntaxes)


def test_importing_pocketpacs_does_not_import_pydicom():
    """Why the pixel tables are spelled out: pydicom stays out of a plain import."""
    code = ("import sys, pocketpacs, pocketpacs.dicom.headers, pocketpacs.images.pixelformat, pocketpacs.images.frames; "
            "print('pydicom' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
