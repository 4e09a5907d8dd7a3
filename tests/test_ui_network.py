"""The Network view (issue 14): its bridge commands against a real Orthanc, and the page in Chromium.

Bridge level: a real :class:`~pocketpacs.ui.session.Session` on a fresh
archive, its commands called through :func:`pocketpacs.ui.bridge.call` (the
table the page uses): nodes added and removed (a password is stored in the
credentials file and never answered), echo, a remote search with the archive
search's fields, a retrieve as a background job (the series then in the
archive's list, ``in_archive`` in the next search), a send of a study back
to an emptied Orthanc, and the listener receiving what Orthanc pushes.
Browser level: ``pocketpacs serve`` and headless Chromium add a node, echo
it, search, retrieve a study and see its series in the archive list.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from net_support import AET, POCKET_AET, orthanc, synth_files  # noqa: F401

from pocketpacs.ui import bridge

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synth_files(tmp_path_factory.mktemp("synth_ui"), series=2, slices=5, compressed_fraction=0.0,
                       implicit_fraction=0.0)


@pytest.fixture
def session(tmp_path):
    from pocketpacs.ui.session import Session

    s = Session(str(tmp_path / "ar"), mode="serve")
    yield s
    s.close()


def ok(name, args=None):
    env = bridge.call(name, args or {})
    assert env["ok"], (name, env)
    return env["data"]


def fails(name, args=None):
    env = bridge.call(name, args or {})
    assert not env["ok"], (name, env)
    return env["error"]


def wait_job(job_id, timeout=120.0):
    end = time.monotonic() + timeout
    while True:
        st = ok("net_job", {"job_id": job_id})
        if st["finished"]:
            return st
        assert time.monotonic() < end, st
        time.sleep(0.1)


def add_orthanc(o, name="pacs", retrieve="get"):
    return ok("net_add", {"name": name, "kind": "dimse", "aet": AET, "host": "127.0.0.1", "port": o.dicom_port,
                          "calling_aet": POCKET_AET, "retrieve": retrieve, "move_port": o.pocket_port})


def test_nodes_echo_and_a_password_that_never_comes_back(orthanc, session, tmp_path):  # noqa: F811
    nodes = add_orthanc(orthanc)["nodes"]
    assert [n["name"] for n in nodes] == ["pacs"] and nodes[0]["aet"] == AET
    secret = "s3cret-Pa55"
    nodes = ok("net_add", {"name": "web", "kind": "dicomweb", "url": orthanc.dicomweb, "user": "bob",
                           "password": secret})["nodes"]
    web = next(n for n in nodes if n["name"] == "web")
    assert web["has_password"] is True and web["user"] == "bob"
    assert secret not in json.dumps(ok("net_nodes"))
    creds = tmp_path / "ar" / "remote-credentials.json"
    assert secret in creds.read_text()
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    assert secret not in (tmp_path / "ar" / "remotes.json").read_text()
    # echo: C-ECHO and a QIDO-RS ping
    assert ok("net_echo", {"name": "pacs"})["ok"] is True
    assert ok("net_echo", {"name": "web"})["ok"] is True
    # a node that does not answer: the reason, not a traceback
    ok("net_add", {"name": "dead", "kind": "dimse", "aet": "NOBODY", "host": "127.0.0.1", "port": 1})
    err = fails("net_echo", {"name": "dead"})
    assert "cannot connect to 127.0.0.1:1" in err["message"]
    # bad input names the field
    assert "AE title" in fails("net_add", {"name": "x", "kind": "dimse", "aet": "A\\B", "host": "h",
                                           "port": 104})["message"]
    assert fails("net_add", {"name": "pacs", "kind": "dimse", "aet": AET, "host": "127.0.0.1",
                             "port": 4242})["message"].startswith("a remote named 'pacs' exists")
    nodes = ok("net_remove", {"name": "web"})["nodes"]
    assert [n["name"] for n in nodes] == ["dead", "pacs"]
    assert secret not in creds.read_text()


@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_find_retrieve_and_send_through_the_session(orthanc, synth, session, retrieve):  # noqa: F811
    orthanc.clear()
    orthanc.upload(synth)
    add_orthanc(orthanc, retrieve=retrieve)
    found = ok("net_find", {"node": "pacs"})["results"]
    assert len(found) == 1 and found[0]["in_archive"] is False and found[0]["n_instances"] == 10
    study = found[0]
    year = study["study_date"][:4]
    # the archive search's fields: a year, a range, a wildcard name
    assert ok("net_find", {"node": "pacs", "study_date": year})["results"]
    assert ok("net_find", {"node": "pacs", "date_from": year, "date_to": year})["results"]
    assert not ok("net_find", {"node": "pacs", "study_date": f"{int(year) + 1}-"})["results"]
    first = study["patient_name"].split("^")[0][:3]
    assert ok("net_find", {"node": "pacs", "name": first.lower() + "*"})["results"]
    assert "date" in fails("net_find", {"node": "pacs", "study_date": "2020-13"})["message"].lower()
    # retrieve: a background job; the series are then in the archive list
    job = ok("net_get", {"node": "pacs", "study_uid": study["study_instance_uid"]})["job_id"]
    st = wait_job(job)
    assert st["error"] is None and st["problem"] is None, st
    assert st["result"] == {"received": 10, "indexed": 10, "already": 0, "failed": []}
    assert st["done"] == st["total"] == 10
    rows = ok("search", {})["rows"]
    assert len(rows) == 2 and sum(r["images"] for r in rows) == 10
    assert ok("net_find", {"node": "pacs"})["results"][0]["in_archive"] is True
    # send the study of one series back to an emptied Orthanc
    orthanc.clear()
    job = ok("net_send", {"node": "pacs", "series_id": rows[0]["series_id"], "scope": "study"})["job_id"]
    st = wait_job(job)
    assert st["result"] == {"sent": 10, "failed": []}, st
    assert len(orthanc.sop_uids()) == 10
    orthanc.clear()
    st = wait_job(ok("net_send", {"node": "pacs", "series_id": rows[0]["series_id"]})["job_id"])
    assert st["result"] == {"sent": 5, "failed": []}, st


def test_a_cancelled_retrieve_leaves_whole_instances_and_the_next_one_fetches_the_rest(orthanc, synth,  # noqa: F811
                                                                                      session):
    orthanc.clear()
    orthanc.upload(synth)
    add_orthanc(orthanc)
    study = ok("net_find", {"node": "pacs"})["results"][0]["study_instance_uid"]
    job = ok("net_get", {"node": "pacs", "study_uid": study})["job_id"]
    assert ok("net_cancel", {"job_id": job}) == {"cancelling": True}
    first = wait_job(job)
    assert first["cancelled"] is True and first["error"] is None
    got = first["result"]["indexed"]
    assert sum(r["images"] for r in ok("search", {})["rows"]) == got
    again = wait_job(ok("net_get", {"node": "pacs", "study_uid": study})["job_id"])
    assert again["result"]["already"] == got and again["result"]["received"] == 10 - got, again
    assert sum(r["images"] for r in ok("search", {})["rows"]) == 10
    assert fails("net_job", {"job_id": "0" * 32})["code"] == "not_found"


def test_retrieve_of_an_unknown_study_says_so(orthanc, session):  # noqa: F811
    orthanc.clear()
    add_orthanc(orthanc)
    st = wait_job(ok("net_get", {"node": "pacs", "study_uid": "1.2.3.4.5"})["job_id"])
    assert st["result"] is None and "has no instances of the study 1.2.3.4.5" in st["error"]["message"]
    assert fails("net_get", {"node": "nosuch", "study_uid": "1.2.3"})["message"].startswith("no remote named")


def test_listener_on_off_with_counters(orthanc, synth, session):  # noqa: F811
    orthanc.clear()
    orthanc.upload(synth)
    assert ok("net_listener") == {"running": False}
    st = ok("net_listen", {"on": True, "port": orthanc.pocket_port, "aet": POCKET_AET})
    assert st["running"] and st["port"] == orthanc.pocket_port and st["aet"] == POCKET_AET
    assert "already runs" in fails("net_listen", {"on": True, "port": orthanc.pocket_port})["message"]
    orthanc.push_to_pocket(list(orthanc.sop_uids().values()))
    end = time.monotonic() + 60
    while ok("net_listener")["indexed"] < 10:
        assert time.monotonic() < end, ok("net_listener")
        time.sleep(0.2)
    st = ok("net_listener")
    assert (st["received"], st["failed"], st["refused"]) == (10, 0, 0)
    assert len(ok("search", {})["rows"]) == 2
    assert ok("net_listen", {"on": False}) == {"running": False}


def test_listener_bind_address_is_checked_as_the_cli_does_and_warned_off_loopback(session):
    """The bind address and allowed callers go through the checks of `listen --bind/--allow`;
    off loopback the status carries a warning (other computers can connect; any AE title without
    an allow list)."""
    from pocketpacs.net.listener import check_bind

    st = ok("net_listen", {"on": True, "port": 0, "bind": "127.0.0.1"})
    assert st["running"] and st["bind"] == "127.0.0.1" and st["warning"] is None and st["allow"] == []
    ok("net_listen", {"on": False})
    st = ok("net_listen", {"on": True, "port": 0, "bind": "0.0.0.0"})
    assert st["bind"] == "0.0.0.0"
    assert "other computers on the network can connect" in st["warning"]
    assert "any calling AE title is accepted (no --allow list)" in st["warning"]
    assert ok("net_listener")["warning"] == st["warning"]
    ok("net_listen", {"on": False})
    st = ok("net_listen", {"on": True, "port": 0, "bind": "0.0.0.0", "allow": "ORTHANC, STORESCU"})
    assert st["allow"] == ["ORTHANC", "STORESCU"]
    assert "only the calling AE titles ORTHANC, STORESCU are accepted" in st["warning"]
    ok("net_listen", {"on": False})
    # what the CLI refuses, the page is refused with the same words
    for bad in ("not an address!", "1.2.3.999", "a" * 300):
        err = fails("net_listen", {"on": True, "port": 0, "bind": bad})
        assert err["code"] == "bad_request"
        if len(bad) < 255:
            with pytest.raises(Exception) as cli:
                check_bind(bad)
            assert err["message"] == str(cli.value)
    assert "allowed AE title" in fails("net_listen", {"on": True, "port": 0, "allow": "A\\B"})["message"]
    assert ok("net_listener") == {"running": False}


# ------------------------------------------------------------------ the page
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An empty archive for `serve` (the fixture `served` serves it)."""
    import pocketpacs

    root = tmp_path_factory.mktemp("ui_network")
    with pocketpacs.open_archive(root / "archive"):
        pass
    return {"archive": root / "archive"}


@pytest.mark.slow
def test_the_network_view_adds_echoes_searches_and_retrieves(orthanc, synth, served, browser):  # noqa: F811
    orthanc.clear()
    orthanc.upload(synth)
    pg = browser.new_page(viewport={"width": 1100, "height": 700})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(served.url)
    S.wait_js(pg, "document.body.dataset.ready")
    assert pg.evaluate("document.querySelectorAll('#series-table tbody tr.series').length") == 0
    pg.click("#btn-network")
    S.wait_js(pg, "!document.getElementById('network').hidden")
    # add a node
    pg.fill("#net-add input[name=name]", "orthanc")
    pg.fill("#net-add input[name=aet]", AET)
    pg.fill("#net-add input[name=host]", "127.0.0.1")
    pg.fill("#net-add input[name=port]", str(orthanc.dicom_port))
    pg.click("#net-add button[type=submit]")
    S.wait_js(pg, "document.querySelector('#net-nodes tr[data-name=orthanc]')")
    # echo it
    pg.click("#net-nodes tr[data-name=orthanc] button.echo")
    S.wait_js(pg, "document.querySelector('#net-nodes tr[data-name=orthanc]').dataset.echo")
    assert pg.evaluate("document.querySelector('#net-nodes tr[data-name=orthanc]').dataset.echo") == "ok"
    # search: a year range in the archive's syntax
    year = orthanc.rest(f"/studies/{orthanc.rest('/studies')[0]}")["MainDicomTags"]["StudyDate"][:4]
    pg.fill("#net-search input[name=study_date]", f"{year}-{year}")
    pg.click("#net-search button[type=submit]")
    S.wait_js(pg, "document.querySelectorAll('#net-results tbody tr').length")
    row = "#net-results tbody tr:first-child"
    assert pg.evaluate(f"document.querySelector('{row}').dataset.inArchive") == "0"
    # retrieve: progress, then the series are in the archive list
    pg.click(f"{row} button.get")
    S.wait_js(pg, "document.getElementById('net-job').dataset.finished === '1'", timeout=120)
    assert "10 received" in pg.evaluate("document.getElementById('net-job-text').textContent")
    S.wait_js(pg, "document.querySelector('#net-results tbody tr:first-child').dataset.inArchive === '1'")
    pg.click("#btn-archive")
    S.wait_js(pg, "document.querySelectorAll('#series-table tbody tr.series').length === 2", timeout=30)
    pg.close()
    assert not errors, errors


@pytest.mark.slow
def test_the_listener_warns_on_screen_when_it_listens_off_loopback(served, browser):
    pg = browser.new_page(viewport={"width": 1100, "height": 700})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(served.url)
    S.wait_js(pg, "document.body.dataset.ready")
    pg.click("#btn-network")
    S.wait_js(pg, "!document.getElementById('network').hidden")
    assert pg.evaluate("document.querySelector('#net-listen input[name=bind]').value") == "127.0.0.1"
    from net_support import free_port

    pg.fill("#net-listen input[name=port]", str(free_port()))
    pg.click("#net-listen-btn")
    S.wait_js(pg, "document.getElementById('net-listen').dataset.running === '1'")
    assert pg.evaluate("document.getElementById('net-listen-warning').hidden") is True
    pg.click("#net-listen-btn")
    S.wait_js(pg, "document.getElementById('net-listen').dataset.running === '0'")
    pg.fill("#net-listen input[name=bind]", "0.0.0.0")
    pg.click("#net-listen-btn")
    S.wait_js(pg, "document.getElementById('net-listen').dataset.running === '1'")
    text = pg.evaluate("document.getElementById('net-listen-warning').textContent")
    assert pg.evaluate("document.getElementById('net-listen-warning').hidden") is False
    assert "other computers on the network can connect" in text and "any calling AE title" in text
    assert pg.evaluate("document.querySelector('#net-listen input[name=bind]').disabled") is True
    pg.click("#net-listen-btn")
    S.wait_js(pg, "document.getElementById('net-listen').dataset.running === '0'")
    assert pg.evaluate("document.getElementById('net-listen-warning').hidden") is True
    pg.close()
    assert not errors, errors
