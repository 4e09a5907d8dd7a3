"""Which instances may carry burned-in patient text in their pixels.

De-identification rewrites headers only, so an image whose pixels may show
a name or a date is refused unless the user accepts it: BurnedInAnnotation
``YES``, and the modalities and SOP classes known to carry text in the
image whatever that attribute says (ultrasound, secondary captures and
screenshots, scanned documents, encapsulated documents, photographs).
"""
from __future__ import annotations

from typing import Any

#: Modalities whose images commonly carry burned-in text.
MODALITIES = frozenset({"US", "SC", "DOC", "XC", "ES", "GM", "SM"})

#: SOP Class UID prefixes (the class and its relatives) known to carry text or faces in the pixels.
SOP_CLASS_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",       # Secondary Capture family (screenshots, scanned documents)
    "1.2.840.10008.5.1.4.1.1.6.",      # Ultrasound Image, Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.3.1",     # Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.104.",    # Encapsulated PDF, CDA, STL, OBJ, MTL documents
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image (and its video)
    "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image (and its video)
)


def burned_in_reason(ds: Any) -> str | None:
    """Why ``ds`` may carry burned-in text, or None.

    Parameters
    ----------
    ds : pydicom.Dataset

    Returns
    -------
    str or None
        A reason naming the attribute, modality or SOP class (never a header value of the patient).
    """
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in MODALITIES:
        return f"modality {modality} commonly carries burned-in text"
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if sop_class.startswith(SOP_CLASS_PREFIXES):
        from pydicom.uid import UID

        name = UID(sop_class).name if UID(sop_class).is_valid else "unknown class"
        return f"{name} commonly carries burned-in text"
    return None
