"""Remote nodes (issue 14): the node files, ``remote add/list/rm``, echo and find
against a real Orthanc (tests/net_support.py), over DIMSE and DICOMweb."""
from __future__ import annotations

import json
import stat

import pytest
from net_support import AET, free_port, orthanc, synth_files  # noqa: F401  (orthanc: a fixture)

from pocketpacs.cli import main


def run(capsys, archive, *argv):
    capsys.readouterr()
    code = main(["--archive", str(archive), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def loaded(orthanc, tmp_path_factory):  # noqa: F811
    """Orthanc holding one synthetic study (patient Müller^Jürgen, CT, 2019-09-26)."""
    orthanc.clear()
    files = synth_files(tmp_path_factory.mktemp("synth"))
    orthanc.upload(files)
    return orthanc


def test_add_list_rm_and_the_files_are_private(tmp_path, capsys):
    ar = tmp_path / "ar"
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pass\n")
    assert run(capsys, ar, "remote", "add", "pacs", "--dimse", "ORTHANC@127.0.0.1:4242", "--retrieve", "move")[0] == 0
    code, _, _ = run(capsys, ar, "remote", "add", "web", "--dicomweb", "https://pacs.example/dicom-web",
                     "--user", "me", "--password-file", str(pw))
    assert code == 0
    code, out, _ = run(capsys, ar, "remote", "list", "--json")
    assert code == 0
    nodes = {n["name"]: n for n in json.loads(out)}
    assert nodes["pacs"]["aet"] == "ORTHANC" and nodes["pacs"]["port"] == 4242 and nodes["pacs"]["retrieve"] == "move"
    assert nodes["web"]["user"] == "me" and nodes["web"]["has_password"] is True
    assert "s3cret" not in out
    code, out2, _ = run(capsys, tmp_path / "other", "remote", "list", "--json", "--archive", str(ar))
    assert code == 0 and json.loads(out2) == json.loads(out)  # --archive also after the action
    for name in ("remotes.json", "remote-credentials.json"):
        assert stat.S_IMODE((ar / name).stat().st_mode) == 0o600
    assert "s3cret" not in (ar / "remotes.json").read_text()
    assert json.loads((ar / "remote-credentials.json").read_text()) == {"web": "s3cret-pass"}
    # a duplicate name, a bad spec: clear messages, exit 4
    code, _, err = run(capsys, ar, "remote", "add", "pacs", "--dimse", "X@h:1")
    assert code == 4 and "exists" in err
    code, _, err = run(capsys, ar, "remote", "add", "bad", "--dimse", "no-port")
    assert code == 4 and "AET@HOST:PORT" in err
    assert run(capsys, ar, "remote", "rm", "web")[0] == 0
    assert json.loads((ar / "remote-credentials.json").read_text()) == {}
    code, _, err = run(capsys, ar, "remote", "echo", "nothere")
    assert code == 4 and "no remote named 'nothere'" in err and "pacs" in err


def test_echo_dimse_and_dicomweb(loaded, tmp_path, capsys):
    ar = tmp_path / "ar"
    run(capsys, ar, "remote", "add", "o", "--dimse", f"{AET}@127.0.0.1:{loaded.dicom_port}")
    run(capsys, ar, "remote", "add", "w", "--dicomweb", loaded.dicomweb)
    code, out, _ = run(capsys, ar, "remote", "echo", "o")
    assert code == 0 and "answers" in out
    assert run(capsys, ar, "remote", "echo", "w")[0] == 0


def test_echo_of_a_dead_port_and_a_wrong_called_aet(loaded, tmp_path, capsys):
    ar = tmp_path / "ar"
    dead = free_port()
    run(capsys, ar, "remote", "add", "dead", "--dimse", f"X@127.0.0.1:{dead}")
    run(capsys, ar, "remote", "add", "deadweb", "--dicomweb", f"http://127.0.0.1:{dead}/dicom-web")
    run(capsys, ar, "remote", "add", "wrong", "--dimse", f"NOTORTHANC@127.0.0.1:{loaded.dicom_port}")
    code, _, err = run(capsys, ar, "remote", "echo", "dead")
    assert code == 4 and "cannot connect" in err and "refused" in err and "Traceback" not in err
    code, _, err = run(capsys, ar, "remote", "echo", "deadweb")
    assert code == 4 and "cannot connect" in err
    code, _, err = run(capsys, ar, "remote", "echo", "wrong")
    assert code == 4 and "rejected the association" in err and "called AE title" in err


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_find_with_wildcards_dates_and_filters(loaded, tmp_path, capsys, kind):
    ar = tmp_path / "ar"
    spec = (["--dimse", f"{AET}@127.0.0.1:{loaded.dicom_port}"] if kind == "dimse"
            else ["--dicomweb", loaded.dicomweb])
    run(capsys, ar, "remote", "add", "n", *spec)

    def find(*f):
        code, out, err = run(capsys, ar, "remote", "find", "n", *f, "--json")
        assert code in (0, 1), err
        return json.loads(out)["results"]

    every = find()
    assert len(every) == 1
    st = every[0]
    assert st["patient_name"] == "Müller^Jürgen" and st["modalities"] == ["CT"] and st["n_instances"] == 8
    assert st["in_archive"] is False
    assert set(st) == {"study_instance_uid", "patient_name", "patient_id", "birth_date", "study_date",
                       "modalities", "description", "accession", "n_series", "n_instances", "in_archive"}
    # the archive's rules on what the server returns: case-insensitive prefixes, wildcards,
    # partial dates and ranges (the server is asked for *word*: Orthanc keeps accents there)
    assert find("--name", "Mül*") == every
    assert find("--name", "jürg") == every
    assert find("--name", "M?ller") == every
    assert find("--name", "smith*") == []
    assert find("--patient-id", st["patient_id"][:4] + "*") == every
    assert find("--study-date", "2019") == every
    assert find("--study-date", "201909") == every
    assert find("--study-date", "20190101-20191231") == every
    assert find("--study-date", "2020-") == []
    assert find("--birth-date", st["birth_date"][:4]) == every
    assert find("--modality", "MR") == []
    assert find("--modality", "CT,MR") == every
    assert find("--description", "thorax") == every
    assert find("--accession", st["accession"]) == every
    code, _, err = run(capsys, ar, "remote", "find", "n", "--study-date", "2019-13")
    assert code == 2 and "not a date" in err


def test_dicomweb_wildcard_is_sent_raw(loaded):
    """Orthanc's DICOMweb plugin 1.7 matches %2A literally; our client sends a raw '*'."""
    from pocketpacs.net.nodes import RemoteNode
    from pocketpacs.net.web import find_studies

    node = RemoteNode("w", "dicomweb", url=loaded.dicomweb)
    assert len(find_studies(node, {"PatientID": "SYN*"})) == 1


def test_find_by_a_calling_aet_the_peer_does_not_know(loaded, tmp_path, capsys):
    """Orthanc answers C-ECHO from anyone but C-FIND only from its known modalities."""
    ar = tmp_path / "ar"
    run(capsys, ar, "remote", "add", "o", "--dimse", f"{AET}@127.0.0.1:{loaded.dicom_port}", "--calling-aet", "STRANGER")
    assert run(capsys, ar, "remote", "echo", "o")[0] == 0
    code, _, err = run(capsys, ar, "remote", "find", "o")
    assert code == 4 and "'STRANGER'" in err and "known modalities" in err and "Traceback" not in err


def test_dicomweb_with_a_user_and_password(tmp_path, capsys):
    """An Orthanc asking for HTTP basic authentication: the stored password works, a wrong
    one is a clear refusal, and the password appears in no output."""
    from net_support import Orthanc, require_orthanc

    require_orthanc()
    (tmp_path / "o").mkdir()
    o = Orthanc(tmp_path / "o", users={"alice": "wonder-land-7"})
    o.start()
    try:
        ar = tmp_path / "ar"
        good, bad = tmp_path / "good", tmp_path / "bad"
        good.write_text("wonder-land-7\n")
        bad.write_text("guess\n")
        run(capsys, ar, "remote", "add", "w", "--dicomweb", o.dicomweb, "--user", "alice", "--password-file", str(good))
        run(capsys, ar, "remote", "add", "x", "--dicomweb", o.dicomweb, "--user", "alice", "--password-file", str(bad))
        run(capsys, ar, "remote", "add", "n", "--dicomweb", o.dicomweb)
        outputs = []
        for name, want in (("w", 0), ("x", 4), ("n", 4)):
            code, out, err = run(capsys, ar, "remote", "echo", name)
            outputs += [out, err]
            assert code == want, err
            if want:
                assert "HTTP 401" in err and "--user" in err
        code, out, err = run(capsys, ar, "remote", "list", "--json")
        outputs += [out, err]
        assert all("wonder-land-7" not in t for t in outputs)
    finally:
        o.stop()
