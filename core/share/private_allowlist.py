"""The Retain Safe Private option's allowlist: private elements known to hold
no identifying information and needed to read the images correctly
(diffusion b-values and directions, Siemens mosaic geometry, Philips scale
factors).  Every other private element is removed.  (Siemens' CSA Image
Header Version, 0029,xx09, is not on it: in real files it holds the
acquisition date, and no reader needs it.)
"""
from __future__ import annotations

#: (private creator, group, element byte within the block): the safe private elements
SAFE_PRIVATE: frozenset[tuple[str, int, int]] = frozenset({
    ("SIEMENS MR HEADER", 0x0019, 0x0A),   # NumberOfImagesInMosaic
    ("SIEMENS MR HEADER", 0x0019, 0x0B),   # SliceMeasurementDuration
    ("SIEMENS MR HEADER", 0x0019, 0x0C),   # B_value
    ("SIEMENS MR HEADER", 0x0019, 0x0D),   # DiffusionDirectionality
    ("SIEMENS MR HEADER", 0x0019, 0x0E),   # DiffusionGradientDirection
    ("SIEMENS MR HEADER", 0x0019, 0x27),   # B_matrix
    ("SIEMENS MR HEADER", 0x0019, 0x28),   # BandwidthPerPixelPhaseEncode
    ("SIEMENS MR HEADER", 0x0019, 0x29),   # MosaicRefAcqTimes
    ("SIEMENS CSA HEADER", 0x0029, 0x08),  # CSA Image Header Type
    ("SIEMENS CSA HEADER", 0x0029, 0x10),  # CSA Image Header Info (slice normal, mosaic size)
    ("GEMS_PARM_01", 0x0043, 0x39),        # slop_int_6..9 (diffusion b-value)
    ("PHILIPS IMAGING DD 001", 0x2001, 0x03),     # Diffusion B-Factor
    ("PHILIPS MR IMAGING DD 001", 0x2005, 0x0D),  # Scale Intercept
    ("PHILIPS MR IMAGING DD 001", 0x2005, 0x0E),  # Scale Slope
})


def is_safe(creator: str, group: int, element: int) -> bool:
    """Whether the private element ``(group, element)`` of the block reserved by ``creator`` is on the allowlist.

    Parameters
    ----------
    creator : str
        The Private Creator value of the element's block.
    group, element : int
        The element's tag.

    Returns
    -------
    bool
    """
    return (creator.strip().upper(), group, element & 0xFF) in SAFE_PRIVATE
