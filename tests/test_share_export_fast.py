"""The export's per-file fast paths (issue 15): series files from the stored rows, reads at
the recorded size, one writev of the rewriter's pieces, the de-identifier kept between
exports; each gives what the plain way gives."""
from __future__ import annotations

import os
import re
import shutil
import stat

import pytest

import pocketpacs
from pocketpacs.share import export, export_dicom
from pocketpacs.share.deidentify import Deidentifier
from pocketpacs.share.rewrite import ByteRewriter, NotRewritable

CT = "dcm_qa_ct_philips_S21570"


@pytest.fixture()
def ct_archive(corpus, tmp_path):
    """An archive of a copy of the corpus's CT series (files of the copy may be removed)."""
    src = tmp_path / "ct"
    shutil.copytree(corpus / CT, src)
    ar = pocketpacs.open_archive(tmp_path / "archive")
    ar.import_folder(src)
    yield ar
    ar.close()


def _all_series(ar):
    return [se for st in ar.studies() for se in ar.series(st)]


def test_series_paths_are_the_series_files_in_their_order(ct_archive):
    longest = 0
    for se in _all_series(ct_archive):
        paths, sizes = export._series_paths(ct_archive, se)
        assert paths == ct_archive.series_files(se)
        assert sizes == [os.path.getsize(p) for p in paths]
        longest = max(longest, len(paths))
    assert longest > 10


def test_series_paths_with_a_file_gone_or_back_ask_series_files(ct_archive):
    se = max(_all_series(ct_archive), key=lambda s: len(ct_archive.series_files(s)))
    files = ct_archive.series_files(se)
    gone = files[3]
    saved = open(gone, "rb").read()
    os.unlink(gone)
    paths, sizes = export._series_paths(ct_archive, se)
    assert paths == [p for p in files if p != gone] and sizes is None
    assert sum(not i.online for i in ct_archive.instances(se)) == 1  # marked offline, as series_files does
    with open(gone, "wb") as f:
        f.write(saved)
    paths, sizes = export._series_paths(ct_archive, se)  # back: online again
    assert paths == files and all(i.online for i in ct_archive.instances(se))
    assert export._series_paths(ct_archive, se) == (files, [len(open(p, "rb").read()) for p in files])


@pytest.mark.parametrize("hint", [0, 1, 99, 100, 101, 70_000, 1 << 20])
def test_read_file_whatever_the_size_hint(tmp_path, hint):
    for size in (0, 100, 70_000, 300_000):
        p = tmp_path / f"f{size}"
        data = os.urandom(size)
        p.write_bytes(data)
        assert export._read_file(str(p), hint) == data
    with pytest.raises(FileNotFoundError):
        export._read_file(str(tmp_path / "absent"), hint)


def test_write_new_writes_the_pieces_in_turn(tmp_path):
    source = os.urandom(5000)
    pieces = [b"head", memoryview(source)[10:4000], b"", bytearray(b"tail")]
    export._write_new(str(tmp_path / "a.dcm"), pieces)
    assert (tmp_path / "a.dcm").read_bytes() == b"head" + source[10:4000] + b"tail"
    assert stat.S_IMODE(os.stat(tmp_path / "a.dcm").st_mode) == 0o600
    many = [bytes([i % 256]) * 3 for i in range(2000)]  # more pieces than one writev takes
    export._write_new(str(tmp_path / "b.dcm"), many)
    assert (tmp_path / "b.dcm").read_bytes() == b"".join(many)
    with pytest.raises(FileExistsError):
        export._write_new(str(tmp_path / "a.dcm"), [b"x"])
    assert (tmp_path / "a.dcm").read_bytes()[:4] == b"head"


def test_rewrite_parts_join_to_rewrite(corpus):
    rw = ByteRewriter(Deidentifier(b"\x05" * 32, ["modified-dates"]))
    files = sorted(os.path.join(d, f) for d, _dirs, names in os.walk(corpus / CT) for f in names)
    assert files
    written = 0
    for path in files[:40]:
        with open(path, "rb") as f:
            data = f.read()
        try:
            parts, warnings = rw.rewrite_parts(data, "archive-patient:1")
        except NotRewritable as e:
            with pytest.raises(NotRewritable, match=re.escape(str(e))):
                rw.rewrite(data, "archive-patient:1")
            continue
        assert (b"".join(parts), warnings) == rw.rewrite(data, "archive-patient:1")
        written += 1
    assert written > 10


def _contents(res):
    return [open(p, "rb").read() for _src, p in res.pairs]


def test_kept_deidentifier_gives_the_same_files_and_is_never_shared(ct_archive, tmp_path):
    export._kept.clear()
    st = ct_archive.studies()[0]
    first = export_dicom(ct_archive, [st.uid], tmp_path / "1", deidentify=True, options=["modified-dates"])
    assert len(export._kept) == 1
    (ck, (deid, rw)), = export._kept.items()
    assert rw._plans  # the plans worked out are kept
    again = export_dicom(ct_archive, [st.uid], tmp_path / "2", deidentify=True, options=["modified-dates"])
    assert _contents(again) == _contents(first)
    assert export._kept[ck][0] is deid  # the same one, given back
    export._kept.clear()
    fresh = export_dicom(ct_archive, [st.uid], tmp_path / "3", deidentify=True, options=["modified-dates"])
    assert _contents(fresh) == _contents(first)
    other = export_dicom(ct_archive, [st.uid], tmp_path / "4", deidentify=True)  # other options: another one
    assert _contents(other) != _contents(first) and len(export._kept) == 2
    taken = export._take_deidentifier(*ck_args(ck))
    assert taken[1] is not None and ck not in export._kept  # in use: out of the keep
    export._give_back(*taken)
    assert ck in export._kept


def ck_args(ck):
    args, kwargs = ck
    return args, dict(kwargs)
