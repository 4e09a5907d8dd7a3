"""The ``manifest.json`` of a synthetic archive: what was written, the ground truth for tests.

``manifest.json`` (UTF-8; fake patient data) holds:

``format``, ``version``, ``manifest_file``
    ``"pocketpacs-synth-manifest"``, 1, ``"manifest.json"`` (the manifest is
    itself a non-DICOM file in the output folder).
``options``
    The generation options (``seed``, sizes, fractions, ``nested``...).
``counts``
    ``files`` (DICOM + junk, manifest excluded), ``dicom_files``,
    ``junk_files``, ``patients``, ``studies``, ``series``,
    ``single_frame_series``, ``enhanced_series``.
``patients``
    ``patient_id``, ``patient_name``, ``birth_date``, ``sex``,
    ``specific_character_set``, ``studies`` (Study Instance UIDs).
``studies``
    ``study_instance_uid``, ``patient_id``, ``study_date``, ``study_time``,
    ``accession_number``, ``study_id``, ``study_description``, ``modality``,
    ``institution_name``, ``referring_physician_name``,
    ``body_part_examined``, ``series`` (Series Instance UIDs).
``series``
    ``series_instance_uid``, ``study_instance_uid``, ``patient_id``,
    ``kind`` (``single-frame`` or ``enhanced``), ``modality``,
    ``sop_class_uid``, ``transfer_syntax_uid``, ``codec`` (``explicit``,
    ``implicit``, ``rle``, ``j2k``, ``jpeg-lossless``), ``implicit_vr``,
    ``orientation`` (``axial``, ``coronal``, ``sagittal``, ``oblique``),
    ``image_orientation_patient``, ``pixel_spacing``, ``slice_thickness``,
    ``spacing_between_slices``, ``rows``, ``cols``, ``bits_allocated``,
    ``bits_stored``, ``pixel_representation``, ``rescale_slope``,
    ``rescale_intercept``, ``window_center``, ``window_width`` (lists),
    ``frame_of_reference_uid``, ``series_number``, ``series_description``,
    ``manufacturer``, ``ascending`` (whether instance/frame 1 is at the low
    end along the slice normal), ``num_files``, ``num_frames``, and per
    file (single-frame: in instance-number order) ``files`` (paths relative
    to the output folder, ``/``-separated), ``sop_instance_uids``,
    ``instance_numbers``; ``positions`` is the Image Position (Patient) of
    each instance (single-frame) or frame (enhanced), as the floats written.
``junk``
    ``path``, ``kind`` (one of :data:`JUNK_KINDS`), ``description``; the
    truncated DICOM files add ``series_instance_uid`` and
    ``sop_instance_uid`` (of their own series, in no manifest series),
    ``full_size`` and ``cut_at`` (the file's length).
"""
from __future__ import annotations

from typing import Any

from .dicom_values import UID_ROOT, _tm
from .plan import _JUNK_DESCRIPTIONS, _Plan


def _manifest(plan: _Plan) -> dict[str, Any]:
    series = []
    for s in plan.series:
        enhanced = s.kind == "enhanced"
        series.append({
            "series_instance_uid": s.uid,
            "study_instance_uid": s.study.uid,
            "patient_id": s.study.patient.patient_id,
            "kind": s.kind,
            "modality": s.modality,
            "sop_class_uid": s.sop_class,
            "transfer_syntax_uid": s.ts,
            "codec": s.codec,
            "implicit_vr": s.implicit,
            "orientation": s.orientation,
            "image_orientation_patient": [float(v) for v in s.iop],
            "pixel_spacing": [float(v) for v in s.spacing],
            "slice_thickness": float(s.thickness),
            "spacing_between_slices": float(s.step),
            "rows": s.rows,
            "cols": s.cols,
            "bits_allocated": 16,
            "bits_stored": s.bits_stored,
            "pixel_representation": s.pixel_representation,
            "rescale_slope": float(s.slope),
            "rescale_intercept": float(s.intercept),
            "window_center": [float(v) for v in s.window_center],
            "window_width": [float(v) for v in s.window_width],
            "frame_of_reference_uid": s.frame_of_reference,
            "series_number": s.number,
            "series_description": s.description,
            "manufacturer": s.manufacturer,
            "ascending": s.ascending,
            "num_files": len(s.paths),
            "num_frames": len(s.positions),
            "files": s.paths,
            "sop_instance_uids": s.sop_uids,
            "instance_numbers": [1] if enhanced else list(range(1, len(s.paths) + 1)),
            "positions": [[float(v) for v in p] for p in s.positions],
        })
    n_dicom = sum(len(s.paths) for s in plan.series)
    return {
        "format": "pocketpacs-synth-manifest",
        "version": 1,
        "manifest_file": "manifest.json",
        "options": plan.options,
        "uid_root": UID_ROOT,
        "phantom": "pocketpacs.synth.phantom_hu (rescaled pixel values equal it at pixel centres)",
        "counts": {
            "files": n_dicom + len(plan.junk),
            "dicom_files": n_dicom,
            "junk_files": len(plan.junk),
            "patients": len(plan.patients),
            "studies": len(plan.studies),
            "series": len(plan.series),
            "single_frame_series": sum(s.kind == "single-frame" for s in plan.series),
            "enhanced_series": sum(s.kind == "enhanced" for s in plan.series),
        },
        "patients": [{
            "patient_id": p.patient_id, "patient_name": p.name, "birth_date": p.birth_date,
            "sex": p.sex, "specific_character_set": p.charset,
            "studies": [st.uid for st in p.studies]} for p in plan.patients],
        "studies": [{
            "study_instance_uid": st.uid, "patient_id": st.patient.patient_id,
            "study_date": st.date, "study_time": _tm(st.time_s), "accession_number": st.accession,
            "study_id": st.study_id, "study_description": st.description, "modality": st.modality,
            "institution_name": st.institution, "referring_physician_name": st.referring,
            "body_part_examined": st.body_part,
            "series": [s.uid for s in st.series]} for st in plan.studies],
        "series": series,
        "junk": [{"path": j.path, "kind": j.kind, "description": _JUNK_DESCRIPTIONS[j.kind], **j.info}
                 for j in plan.junk],
    }
