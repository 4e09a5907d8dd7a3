"""The Python API: open/close, browse, remove (never the files), verify,
rebuild, read-only opens, references by record, key or UID."""
from __future__ import annotations

import hashlib
import os

import pytest

import dicomgen
import pocketpacs
from pocketpacs import paths


@pytest.fixture
def filled(tmp_path):
    root = tmp_path / "data"
    n = dicomgen.write_tree(root, patients=2, studies=2, series=2, slices=3)
    ar = pocketpacs.open_archive(tmp_path / "archive")
    ar.import_folder(root)
    yield ar, root, n
    ar.close()


def digest(root) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_public_api_exports():
    assert pocketpacs.open_archive and pocketpacs.open_media and pocketpacs.Archive
    assert {"open_archive", "open_media", "Archive"} <= set(pocketpacs.__all__)


def test_default_location_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_ARCHIVE, str(tmp_path / "envarchive"))
    with pocketpacs.open_archive() as ar:
        assert ar.path == tmp_path / "envarchive"
    assert (tmp_path / "envarchive" / "data.mdb").exists()


def test_references_by_record_key_and_uid(filled):
    ar, _root, _n = filled
    st = ar.studies()[0]
    assert ar.study(st.uid) == ar.study(st.key) == ar.study(st) == st
    se = ar.series(st.uid)[0]
    assert ar.get_series(se.uid) == ar.get_series(se.key) == se
    inst = ar.instances(se.uid)[0]
    assert ar.instance(inst.sop_instance_uid) == ar.instance(inst.key) == inst
    pa = ar.patient(st.patient_key)
    assert st in ar.studies(pa)
    with pytest.raises(KeyError):
        ar.study("1.2.3.4.5.6.7.8.9")
    keys, table = ar.series_table(se)
    from pocketpacs.archive import records
    from pocketpacs.dicom import tags
    c = int(tags.NUM_START[tags.INDEX["InstanceNumber"]])
    assert len(keys) == 3 and sorted(table["nums"][:, c].tolist()) == [1.0, 2.0, 3.0]
    assert (table["size"] > 0).all() and table.dtype == records.INST_DTYPE


def test_remove_never_touches_files(filled):
    ar, root, n = filled
    before = digest(root)
    st = ar.studies()[0]
    se = ar.series(st)[0]
    assert ar.remove(series=se.uid) == {"instances": 3}
    assert ar.study(st.uid).n_series == 1 and ar.study(st.uid).n_instances == 3
    assert ar.remove(study=st) == {"instances": 3}
    with pytest.raises(KeyError):
        ar.study(st.uid)
    left = ar.stats()["instances"]
    assert left == n - 6
    pa = ar.patients()[0]
    assert ar.remove(patient=pa) == {"instances": pa.n_instances}
    assert pa.key not in {p.key for p in ar.patients()}
    inst = ar.instances(ar.series(ar.studies()[0])[0])[0]
    assert ar.remove(instance=inst.sop_instance_uid) == {"instances": 1}
    assert ar.stats()["instances"] == left - pa.n_instances - 1
    assert digest(root) == before
    assert ar.verify().problems == []
    # removed entries come back with the next import
    rep = ar.import_folder(root)
    assert ar.stats()["instances"] == n and rep.indexed == 6 + pa.n_instances + 1
    with pytest.raises(TypeError):
        ar.remove()


def test_remove_root(filled):
    ar, root, n = filled
    before = digest(root)
    assert ar.remove(root=root) == {"instances": n}
    st = ar.stats()
    assert st["instances"] == 0 and st["patients"] == 0 and st["roots"] == [] and st["folders"] == 0
    assert digest(root) == before


def test_verify_detects_changes_and_repairs_counts(filled):
    ar, root, n = filled
    rep = ar.verify()
    assert rep.ok and rep.instances == n and rep.locations == n
    f = root / "p0" / "s0" / "r0" / "IM00001"
    f.write_bytes(f.read_bytes() + b"\0\0")
    rep = ar.verify()
    assert rep.changed == 1 and not rep.ok
    # corrupt a stored count: verify repairs it
    from pocketpacs.archive import keys, records
    sk = keys.uid_key("1.2.826.0.2.0.0.0")
    def bump(t):
        t.put("studies", sk, records.add_counts(t.get("studies", sk), 5, 0))
    ar._store.write(bump)
    rep = ar.verify()
    assert rep.repaired >= 1
    assert ar.study("1.2.826.0.2.0.0.0").n_instances == 6


def test_rebuild_recreates_the_same_index(filled):
    ar, root, n = filled
    rows = sorted(tuple(sorted(r.items(), key=str)) for r in map(lambda d: {k: str(v) for k, v in d.items()},
                                                                 ar.iter_instances()))
    reps = ar.rebuild()
    assert len(reps) == 1 and reps[0].indexed == n
    rows2 = sorted(tuple(sorted(r.items(), key=str)) for r in map(lambda d: {k: str(v) for k, v in d.items()},
                                                                  ar.iter_instances()))
    assert rows == rows2
    assert ar.stats()["instances"] == n


def test_readonly_archive(filled, tmp_path):
    ar, root, n = filled
    path = ar.path
    ar.close()
    with pocketpacs.open_archive(path, readonly=True) as ro:
        assert ro.readonly and ro.stats()["instances"] == n
        assert len(ro.search(modality="CT")) == 4
        with pytest.raises(pocketpacs.ArchiveError):
            ro.import_folder(root)
        with pytest.raises(pocketpacs.ArchiveError):
            ro.remove(root=root)
    with pytest.raises(pocketpacs.ArchiveError):
        pocketpacs.open_archive(tmp_path / "none", readonly=True)


def test_header_from_file_and_from_archive(filled):
    ar, root, _n = filled
    inst = ar.instances(ar.series(ar.studies()[0])[0])[0]
    h = ar.header(inst)
    assert h["SOPInstanceUID"] == inst.sop_instance_uid and h["Modality"] == "CT"
    for p in inst.paths:
        os.unlink(p)
    h2 = ar.header(inst)  # no file: stored values
    assert h2["SOPInstanceUID"] == inst.sop_instance_uid and h2["PatientID"] == h["PatientID"]
    assert h2["InstanceNumber"] == 1.0


def test_iter_instances_rows(filled):
    ar, _root, n = filled
    rows = list(ar.iter_instances())
    assert len(rows) == n
    keys = {"patient_name", "patient_id", "birth_date", "study_instance_uid", "series_instance_uid",
            "sop_instance_uid", "series_number", "instance_number", "modality", "transfer_syntax", "online",
            "paths"}
    assert keys <= set(rows[0])
    assert all(r["online"] and len(r["paths"]) == 1 for r in rows)


def test_closed_archive_refuses_use(tmp_path):
    ar = pocketpacs.open_archive(tmp_path / "a")
    ar.close()
    with pytest.raises(pocketpacs.ArchiveError):
        ar.stats()
