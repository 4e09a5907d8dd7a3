"""DICOM export of archived patients, studies or series: plain copies or de-identified.

:func:`export_dicom` resolves the UIDs given (Study or Series Instance UIDs,
or patient keys as ``pocketpacs show`` prints them) through the archive,
then writes every instance whose file is present into ``out_dir``: copied
byte for byte, or rewritten by a :class:`~.deidentify.Deidentifier` (headers
only: pixel data stays byte-equal).  Names in the export are numbered
(``PAT00001/STU00001/SER00001/IMG00001.dcm``) or, with ``dicomdir``, the
standard CD/USB layout of :mod:`.media`; none carries patient data.  Every
folder is 0700 and every file 0600; ``zip`` packs the result into one
``export.zip``.
"""
from __future__ import annotations

import collections
import io
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import PocketPacsError
from ..paths import ensure_private_dir
from .deidentify import BurnedInRefused, Deidentifier
from .fileio import IO_BATCH, READ_AHEAD, _Inline, _prefetch, _read_all, _read_file, _write_all, _write_new  # noqa: F401
from .rewrite import ByteRewriter, NotRewritable
from .media import private_tree, write_fileset
from .pseudonyms import deid_key


#: Threads reading source files ahead and writing exported files behind the header rewriting
#: (0: in the export's own thread).  One: on a busy machine creating a file waits (journal,
#: other processes' I/O) and the rewriting goes on meanwhile: 100-file series in turn on 2
#: cores at load 14-24, 835 / 1,805 / 1,918 files/s with none / one / two threads and 662 /
#: 1,575 with none / one (8 files per task; 1,156 with 4, 1,273 with 16); on a quiet machine,
#: before the per-file work was made lighter, 4,721 / 4,301 / 3,584 (issue 15).
IO_THREADS = 1


class ExportError(PocketPacsError):
    """The export cannot be made (nothing found, the output folder is not empty, ...)."""


class ExportCancelled(ExportError):
    """The export was cancelled; the files and folders it had written are removed."""


#: The warning of every export with the Retain UIDs option.
RETAIN_UIDS_WARNING = ("retain-uids: the exported files keep their original UIDs, which link them back to the "
                       "source data (and to the patient, for anyone who holds it)")


def _remove_partial(out: str, created_out: bool, files: Iterable[str], folders: Iterable[str]) -> None:
    """Remove what a cancelled export wrote: its files, then the folders it made (deepest first,
    each only once empty), then ``out`` itself when the export created it."""
    for f in files:
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    dirs: set[str] = set()
    for d in folders:
        while d.startswith(out + os.sep):
            dirs.add(d)
            d = os.path.dirname(d)
    for d in sorted(dirs, key=len, reverse=True) + ([out] if created_out else []):
        try:
            os.rmdir(d)
        except OSError:
            pass  # not empty: something not ours is in it


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    out_dir : str
    written : list of str
        Files written (the instances, the DICOMDIR, or the zip file).
    instances, studies, series : int
        Counts of exported instances and their studies and series.
    warnings : list of str
        Instances refused or exported with a caveat (no patient data in them).
    refused : int
        Instances not exported (burned-in text, unreadable).
    notes : list of str
        How the export was made where it matters (files de-identified through pydicom,
        the slower path, and why).
    pairs : list of (str, str)
        (source file, exported file) of every exported instance (for previews and checks;
        not in the JSON, which names no source file).
    """
    out_dir: str
    written: list[str] = field(default_factory=list)
    instances: int = 0
    studies: int = 0
    series: int = 0
    warnings: list[str] = field(default_factory=list)
    refused: int = 0
    notes: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``export --dicom --json`` object."""
        return {"written": list(self.written), "instances": self.instances, "studies": self.studies,
                "series": self.series, "warnings": list(self.warnings), "notes": list(self.notes)}


def resolve_series(archive: Any, uids: Iterable[str]) -> list[Any]:
    """The archived series named by ``uids`` (series, study or patient), each once, in order.

    Parameters
    ----------
    archive : pocketpacs.Archive
    uids : iterable of str
        Series Instance UIDs, Study Instance UIDs or patient keys (hex).

    Returns
    -------
    list of pocketpacs.archive.records.Series

    Raises
    ------
    ExportError
        A UID names nothing in the archive.
    """
    out: dict[str, Any] = {}
    for uid in uids:
        found: list[Any] = []
        try:
            found = [archive.get_series(uid)]
        except KeyError:
            try:
                found = archive.series(archive.study(uid))
            except KeyError:
                try:
                    found = [se for st in archive.studies(archive.patient(uid)) for se in archive.series(st)]
                except KeyError:
                    raise ExportError(f"{uid}: no patient, study or series with this UID or key in the archive"
                                      ) from None
        for se in found:
            out.setdefault(se.key, se)
    return list(out.values())


def _series_paths(archive: Any, series: Any) -> tuple[list[str], list[int] | None]:
    """The file of each instance of a series, as ``archive.series_files(series)`` gives them,
    and the size the archive recorded of each (None when not known).

    The series' stored rows are read in one transaction (:meth:`Archive.series_table`: no
    Instance records built) and ordered as :meth:`Archive.instances` orders them; when a file
    is missing, or one marked offline is back, ``series_files`` is asked instead (it records
    the change).
    """
    table = getattr(archive, "series_table", None)
    if table is None:
        return archive.series_files(series), None
    _keys, rows, texts, paths = table(series, text=True)
    if len(paths) == 0:
        return archive.series_files(series), None
    col = _instance_number_column()
    numbers = rows["nums"][:, col].tolist()
    order = sorted(range(len(paths)), key=lambda i: (int(numbers[i]) if numbers[i] == numbers[i] else 1 << 30,
                                                     texts[i].get("SOPInstanceUID", "")))
    from ..archive.records import OFFLINE

    offline = (rows["flags"] & OFFLINE).tolist()
    sizes = rows["size"].tolist()
    out: list[str] = []
    out_sizes: list[int] = []
    isfile = os.path.isfile
    for i in order:
        present = next((p for p in paths[i] if isfile(p)), None)
        if (present is None) != bool(offline[i]):
            return archive.series_files(series), None
        if present is not None:
            out.append(present)
            out_sizes.append(sizes[i] if present == paths[i][0] else 0)
    return out, out_sizes


def _instance_number_column(cache: list[int] = []) -> int:  # noqa: B006 (a module-wide cache)
    """Where InstanceNumber is in a stored row's ``nums``."""
    if not cache:
        from ..dicom import tags

        cache.append(int(tags.NUM_START[tags.INDEX["InstanceNumber"]]))
    return cache[0]


#: De-identifiers (with their byte rewriters: caches of pseudonyms and of plans per file
#: structure) kept from one export to the next with the same key and options, so that an
#: export made series by series does not work out the same plans again.
KEPT_DEIDENTIFIERS = 2
#: Pseudonymous UIDs a kept de-identifier remembers at most (more: forgotten when given back).
KEPT_UIDS = 100_000
_kept: dict[Any, tuple[Deidentifier, ByteRewriter]] = {}
_kept_lock = threading.Lock()


def _take_deidentifier(args: tuple, kwargs: dict[str, Any]) -> tuple[Any, Deidentifier, ByteRewriter]:
    """A Deidentifier(*args, **kwargs) and its ByteRewriter, kept from an earlier export
    when there is one (taken out of the keep while in use: never shared by two exports),
    and the key to give it back under (None: not kept)."""
    try:
        ck: Any = (args, tuple(sorted(kwargs.items())))
        hash(ck)
    except TypeError:  # an argument that cannot be a key: made anew
        ck = None
    if ck is not None:
        with _kept_lock:
            pair = _kept.pop(ck, None)
        if pair is not None:
            return ck, pair[0], pair[1]
    deid = Deidentifier(*args, **kwargs)
    return ck, deid, ByteRewriter(deid)


def _give_back(ck: Any, deid: Deidentifier, rewriter: ByteRewriter) -> None:
    """Keep a de-identifier for the next export (the last KEPT_DEIDENTIFIERS)."""
    if ck is None:
        return
    uids = getattr(deid.names, "_uids", None)
    if isinstance(uids, dict) and len(uids) > KEPT_UIDS:  # (the pseudonyms' own cache has no bound)
        uids.clear()
    with _kept_lock:
        _kept[ck] = (deid, rewriter)
        while len(_kept) > KEPT_DEIDENTIFIERS:
            del _kept[next(iter(_kept))]


def _read(path: str) -> Any:
    from pydicom.uid import UID as pydicom_uid

    from ..dicom.fallback import read_dataset_capped

    ds = read_dataset_capped(path, stop_before_pixels=False)
    fm = getattr(ds, "file_meta", None)
    if fm is None or "TransferSyntaxUID" not in fm:
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        fm = fm if fm is not None else FileMetaDataset()
        fm.TransferSyntaxUID = ImplicitVRLittleEndian if ds.is_implicit_VR else ExplicitVRLittleEndian
        ds.file_meta = fm
    implicit = pydicom_uid(ds.file_meta.TransferSyntaxUID).is_implicit_VR
    if not implicit and any(getattr(ds.get_item(t), "VR", "") is None for t in ds.keys()):
        # implicit VR data under an explicit transfer syntax (pydicom read it anyway): decode
        # every element now, so that it is written again with its VR as the meta says
        for _elem in ds.iterall():
            pass
    if "MediaStorageSOPClassUID" not in ds.file_meta and "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in ds.file_meta and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def dataset_bytes(ds: Any) -> bytes:
    """A data set as a DICOM Part 10 file (preamble, file meta, its own transfer syntax)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _zip_tree(root: str, zip_path: str) -> None:
    fd = os.open(zip_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(d, name)
                z.write(p, os.path.relpath(p, root))


def export_dicom(archive: Any, uids: Sequence[str], out_dir: os.PathLike[str] | str, *, deidentify: bool = False,
                 options: Iterable[str] = (), dicomdir: bool = False, zip: bool = False,
                 allow_burned_in: bool = False, patient_name: str | None = None, patient_id: str | None = None,
                 progress: Callable[[int, int], Any] | None = None, engine: str = "bytes",
                 viewer: bool = False, profile: Any = None,
                 cancel: Callable[[], bool] | None = None) -> ExportResult:
    """Export archived instances as DICOM files.

    Parameters
    ----------
    archive : pocketpacs.Archive
    uids : sequence of str
        Study or Series Instance UIDs, or patient keys (hex, as ``pocketpacs show`` lists them).
    out_dir : path-like
        Created 0700 when absent; must be empty.
    deidentify : bool
        Apply PS3.15 Annex E (:class:`~.deidentify.Deidentifier`) with pseudonyms keyed by the archive's secret.
    options : iterable of str
        Profile options (:data:`~.profile_table.OPTIONS`), with ``deidentify``;
        ``clean-visual-features`` refuses whole series that may show a face
        (:mod:`.visual_features`; each listed in the warnings).
    dicomdir : bool
        Standard CD/USB layout with a DICOMDIR (:func:`.media.write_fileset`); the files are
        then written by pydicom's ``FileSet`` (headers re-encoded, pixel data unchanged).
    zip : bool
        Pack everything into ``out_dir/export.zip``.
    allow_burned_in : bool
        Export images that may carry burned-in text (listed in the warnings); else they are refused.
    patient_name, patient_id : str, optional
        Pseudonymous name and ID (default: derived from the key).
    progress : callable, optional
        ``progress(done, total)`` after each instance.
    viewer : bool
        With ``dicomdir``: add the portable viewer (:mod:`.portable`: a static web page in
        ``VIEWER/`` that shows the exported series from the medium, no server needed).
    engine : {"bytes", "pydicom"}
        How de-identified headers are rewritten: ``"bytes"`` (default) rewrites the file's
        bytes (:class:`~.rewrite.ByteRewriter`: unchanged elements and pixel data copied, no
        decoding) and takes the pydicom path for the files it does not handle (deflate, big
        endian, no file meta, ...; counted in ``notes``); ``"pydicom"`` always reads, edits
        and writes the data set with pydicom.  Both give the same elements and values.
    profile : str or SharingProfile, optional
        A named profile of the archive's sharing settings file (:mod:`.settings`), or one
        already loaded: its options are added to ``options``, its private allowlist
        additions and blanking rules apply, and its ``allow_burned_in`` is honoured.
        Implies ``deidentify``.
    cancel : callable, optional
        Asked between files; when it returns True the export stops, removes the files and
        folders it wrote and raises :class:`ExportCancelled`.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        Nothing to export, a UID not in the archive, or a non-empty ``out_dir``.
    ExportCancelled
        ``cancel`` returned True (nothing of the export is left).
    ProfileSettingsError
        A bad settings file or an unknown profile name.
    """
    if profile is not None:
        from .settings import get_profile

        if isinstance(profile, str):
            profile = get_profile(archive, profile)
        deidentify = True
        options = list(dict.fromkeys([*profile.options, *options]))
        allow_burned_in = allow_burned_in or profile.allow_burned_in
    else:
        options = list(options)
    if engine not in ("bytes", "pydicom"):
        raise ValueError(f"engine must be 'bytes' or 'pydicom', not {engine!r}")
    if viewer and not dicomdir:
        raise ExportError("the portable viewer goes on a CD/USB medium: add dicomdir")
    if options and not deidentify:
        raise ExportError("profile options apply to a de-identified export only (add deidentify)")
    series = resolve_series(archive, uids)
    out = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ExportError(f"{out}: the output folder must be empty or not exist yet")
    jobs: list[tuple[Any, str]] = []
    sizes: list[int] = []
    for se in series:
        found, found_sizes = _series_paths(archive, se)
        jobs += [(se, p) for p in found]
        sizes += found_sizes if found_sizes is not None else [0] * len(found)
    if not jobs:
        raise ExportError("no file of the given patients, studies or series is present (offline?)")
    deid = None
    kept_as: Any = None
    kept_rewriter: Any = None
    if deidentify:
        try:
            key = deid_key(archive._secret)
        except ValueError as e:
            raise ExportError(str(e)) from None
        kept_as, deid, kept_rewriter = _take_deidentifier(
            (key, tuple(options), allow_burned_in, patient_name, patient_id),
            {"private": tuple(profile.private) if profile is not None else (),
             "blanking": tuple(profile.blanking) if profile is not None else ()})
    rewriter = kept_rewriter if deid is not None and engine == "bytes" else None
    slow: dict[str, int] = {}  # why files took the pydicom path -> count
    created_out = not os.path.exists(out)
    ensure_private_dir(out)
    res = ExportResult(out)
    if deid is not None and deid.retain_uids:
        res.warnings.append(RETAIN_UIDS_WARNING)
    root = tempfile.mkdtemp(prefix=".export-", dir=out) if zip else out
    numbers: dict[str, dict[str, int]] = {"pat": {}, "stu": {}, "ser": {}}
    if deid is not None and deid.clean_visual_features:  # series that may show a face are refused whole
        from .visual_features import screen_jobs

        jobs, face_warnings, n_faces = screen_jobs(archive, jobs, numbers["ser"])
        res.warnings += face_warnings
        res.refused += n_faces
        deid.series_screened = True
    seen_studies: set[str] = set()
    seen_series: set[str] = set()
    datasets: list[Any] = []
    sources: list[str] = []
    img_no: dict[str, int] = {}
    made: set[str] = set()  # folders already made
    ds_series: list[str] = []  # the series of each data set of a medium
    need_bytes = (deid is None and not dicomdir) or rewriter is not None
    # file reads run ahead and writes behind in threads (the GIL is free during I/O); the
    # headers are rewritten here, in order
    inline = IO_THREADS == 0
    io_pool = _Inline() if inline else ThreadPoolExecutor(IO_THREADS, thread_name_prefix="pocketpacs-export")
    reads = _prefetch(io_pool, [p for _se, p in jobs], sizes) if need_bytes else None
    writes: collections.deque[Future[None]] = collections.deque()
    pending: list[tuple[str, Any]] = []  # files to write, handed over IO_BATCH at a time
    try:
        for done, (se, path) in enumerate(jobs, 1):
            if cancel is not None and cancel():
                raise ExportCancelled(f"export cancelled after {done - 1} of {len(jobs)} files")
            ser_no = numbers["ser"].setdefault(se.key, len(numbers["ser"]) + 1)
            where = f"series {ser_no}, file {img_no.get(se.key, 0) + 1}"
            ds = None
            data = None
            try:
                if reads is not None:
                    data = next(reads)
                    if isinstance(data, Exception):
                        raise data
                    name_ext = ".dcm.gz" if data[:2] == b"\x1f\x8b" else ".dcm"
                else:
                    ds = _read(path)
            except Exception as e:  # one unreadable file does not stop the export
                res.warnings.append(f"{where}: not exported (the file could not be read: {type(e).__name__})")
                res.refused += 1
                continue
            if deid is not None:
                identity = "archive-patient:" + se.patient_key
                try:
                    done_fast = False
                    if rewriter is not None and data is not None:
                        try:
                            parts, notes = rewriter.rewrite_parts(data, identity)
                            if notes:
                                res.warnings += [f"{where}: {w}" for w in notes]
                            name_ext = ".dcm"
                            done_fast = True
                            data = parts  # written with one writev: no joined copy
                            if dicomdir:
                                data = b"".join(parts)
                                ds = _read(data)
                        except NotRewritable as e:
                            slow[str(e)] = slow.get(str(e), 0) + 1
                            ds, data = _read(data), None
                    if not done_fast:
                        res.warnings += [f"{where}: {w}" for w in deid.apply(ds, identity)]
                except BurnedInRefused as e:
                    res.warnings.append(f"{where}: {e}")
                    res.refused += 1
                    continue
                except Exception as e:  # a header the profile cannot be applied to: never exported half-done
                    res.warnings.append(f"{where}: not exported (could not be de-identified: {type(e).__name__})")
                    res.refused += 1
                    continue
            img_no[se.key] = img_no.get(se.key, 0) + 1
            res.instances += 1
            seen_series.add(se.key)
            seen_studies.add(se.study_key)
            if dicomdir:
                datasets.append(ds)
                sources.append(path)
                ds_series.append(se.key)
            else:
                pat = numbers["pat"].setdefault(se.patient_key, len(numbers["pat"]) + 1)
                stu = numbers["stu"].setdefault(se.study_key, len(numbers["stu"]) + 1)
                folder = os.path.join(root, f"PAT{pat:05d}", f"STU{stu:05d}", f"SER{ser_no:05d}")
                if folder not in made:
                    ensure_private_dir(folder)
                    made.add(folder)
                target = os.path.join(folder, f"IMG{img_no[se.key]:05d}" + (name_ext if ds is None else ".dcm"))
                if inline:  # written now
                    _write_new(target, data if data is not None else dataset_bytes(ds))
                else:
                    pending.append((target, data if data is not None else dataset_bytes(ds)))
                if len(pending) >= IO_BATCH:
                    writes.append(io_pool.submit(_write_all, pending))
                    pending = []
                    while len(writes) > max(1, READ_AHEAD // IO_BATCH):  # bounded: the bytes waiting
                        writes.popleft().result()
                res.written.append(target)
                res.pairs.append((path, target))
            if progress is not None:
                progress(done, len(jobs))
        if pending:
            writes.append(io_pool.submit(_write_all, pending))
        for fut in writes:
            fut.result()  # a write that failed fails the export
    except BaseException as exc:
        io_pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(exc, ExportCancelled):
            _remove_partial(out, created_out, res.written, made | ({root} if zip else set()))
        raise
    io_pool.shutdown(wait=True)
    if cancel is not None and cancel():  # (before the medium or the zip file is made)
        _remove_partial(out, created_out, res.written, made | ({root} if zip else set()))
        raise ExportCancelled(f"export cancelled after {len(jobs)} of {len(jobs)} files")
    if dicomdir and datasets:
        written, notes, paths = write_fileset(datasets, root)
        res.written += written
        res.warnings += notes
        res.pairs += [(sources[i], paths[i]) for i in range(len(sources))]  # (`zip` is the parameter)
        if viewer:
            from .portable import write_portable_viewer

            groups: dict[str, list[int]] = {}  # series -> its data sets (`zip` is the parameter)
            for i, key in enumerate(ds_series):
                groups.setdefault(key, []).append(i)
            labels = []
            for n, idx in enumerate(groups.values(), 1):
                modality = str(getattr(datasets[idx[0]], "Modality", "") or "OT")
                labels.append(f"Series {n} · {modality} · {len(idx)} image" + ("" if len(idx) == 1 else "s"))
            v_written, v_notes = write_portable_viewer(root, [[paths[i] for i in idx] for idx in groups.values()],
                                                       labels)
            res.written += v_written
            res.notes += v_notes
    res.studies, res.series = len(seen_studies), len(seen_series)
    if slow:
        res.notes.append(f"{sum(slow.values())} file(s) de-identified through pydicom (the slower path): "
                         + "; ".join(f"{why} ({n})" for why, n in sorted(slow.items())))
    if zip:
        private_tree(root)
        zpath = os.path.join(out, "export.zip")
        _zip_tree(root, zpath)
        shutil.rmtree(root)
        res.written = [zpath]
    if deid is not None:
        _give_back(kept_as, deid, kept_rewriter)
    return res
