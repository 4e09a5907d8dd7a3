"""Plain-Python/NumPy references of the native kernels (the test oracle)."""
from __future__ import annotations

_M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (11400714785074694791, 14029467366897019727, 1609587929392839161,
                      9650029242287828579, 2870177450012600261)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * P2) & _M
    return (_rotl(acc, 31) * P1) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    """Reference XXH64, written from the published algorithm."""
    n = len(data)
    p = 0
    if n >= 32:
        v = [(seed + P1 + P2) & _M, (seed + P2) & _M, seed & _M, (seed - P1) & _M]
        while p + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], int.from_bytes(data[p + 8 * j:p + 8 * j + 8], "little"))
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
        for j in range(4):
            h ^= _round(0, v[j])
            h = (h * P1 + P4) & _M
    else:
        h = (seed + P5) & _M
    h = (h + n) & _M
    while p + 8 <= n:
        h ^= _round(0, int.from_bytes(data[p:p + 8], "little"))
        h = (_rotl(h, 27) * P1 + P4) & _M
        p += 8
    if p + 4 <= n:
        h ^= (int.from_bytes(data[p:p + 4], "little") * P1) & _M
        h = (_rotl(h, 23) * P2 + P3) & _M
        p += 4
    while p < n:
        h ^= (data[p] * P5) & _M
        h = (_rotl(h, 11) * P1) & _M
        p += 1
    h ^= h >> 33
    h = (h * P2) & _M
    h ^= h >> 29
    h = (h * P3) & _M
    h ^= h >> 32
    return h


# ---------------------------------------------------------------------------
# assemble.py / window.py references (NumPy)
# ---------------------------------------------------------------------------
def _fix_bits_np(v, bits_stored: int, signed: bool):
    import numpy as np

    u = v.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        neg = (u >> (bits_stored - 1)) & 1
        u = np.where(neg == 1, u - (1 << bits_stored), u)
    return u


def gather_frames(buf, starts, dst, out, nbytes, signed, swap, bits_stored, samples, planar,
                  slopes, intercepts, rescale):
    """NumPy reference of ``assemble.gather_frames``."""
    import numpy as np

    nvals = out.shape[1]
    npix = nvals // samples
    dt = np.dtype(f"{'>' if swap else '<'}u{nbytes}")
    for f in range(len(starts)):
        raw = np.frombuffer(bytes(buf[starts[f]:starts[f] + nvals * nbytes]), dtype=dt)
        if planar == 1 and samples > 1:
            raw = raw.reshape(samples, npix).T.reshape(-1)
        v = _fix_bits_np(raw, bits_stored, signed)
        if rescale:
            out[dst[f]] = (v * slopes[f] + intercepts[f]).astype(out.dtype)
        else:
            out[dst[f]] = v.astype(out.dtype)


def convert_inplace(src, out, bits_stored, signed, slopes, intercepts, rescale, fix_bits):
    """NumPy reference of ``assemble.convert_inplace`` (src/out may alias)."""
    import numpy as np

    nb = src.itemsize * 8
    for f in range(src.shape[0]):
        raw = src[f].astype(np.int64)
        if fix_bits:
            v = _fix_bits_np(raw & ((1 << nb) - 1), bits_stored, signed)
        else:
            v = raw
        if rescale:
            out[f] = (v * slopes[f] + intercepts[f]).astype(out.dtype)
        else:
            out[f] = v.astype(out.dtype)


def convert_rows(src, out, dst, bits_stored, signed, fix_bits, slopes, intercepts, rescale,
                 int_rescale, vmin, vmax):
    """NumPy reference of ``assemble.convert_rows``."""
    import numpy as np

    nb = src.itemsize * 8
    for j in range(len(dst)):
        raw = np.asarray(src[j]).astype(np.int64)
        v = _fix_bits_np(raw & ((1 << nb) - 1), bits_stored, signed) if fix_bits else raw
        if rescale and int_rescale:
            f = v * np.int64(slopes[j]) + np.int64(intercepts[j])
        elif rescale:
            f = v * np.float64(slopes[j]) + np.float64(intercepts[j])
        else:
            f = v
        out[dst[j]] = f.astype(out.dtype)
        vmin[j] = float(f.min()) if f.size else np.inf
        vmax[j] = float(f.max()) if f.size else -np.inf


def convert_rows_inplace(out, dst, bits_stored, signed, fix_bits, slopes, intercepts, rescale,
                         int_rescale, vmin, vmax):
    """NumPy reference of ``assemble.convert_rows_inplace``."""
    convert_rows(out[dst].copy(), out, dst, bits_stored, signed, fix_bits, slopes, intercepts,
                 rescale, int_rescale, vmin, vmax)


def convert_rows_bytes(buf, out, dst, nbytes, swap, bits_stored, signed, samples, planar, slopes,
                       intercepts, rescale, vmin, vmax):
    """NumPy reference of ``assemble.convert_rows_bytes``."""
    import numpy as np

    nvals = out.shape[1]
    npix = nvals // samples
    dt = np.dtype(f"{'>' if swap else '<'}u{nbytes}")
    for j in range(len(dst)):
        raw = np.frombuffer(bytes(buf[j][:nvals * nbytes]), dtype=dt)
        if planar == 1 and samples > 1:
            raw = raw.reshape(samples, npix).T.reshape(-1)
        v = _fix_bits_np(raw, bits_stored, signed)
        f = v * np.float64(slopes[j]) + np.float64(intercepts[j]) if rescale else v
        out[dst[j]] = f.astype(out.dtype)
        vmin[j] = float(f.min()) if f.size else np.inf
        vmax[j] = float(f.max()) if f.size else -np.inf


def window_u8(src, center: float, width: float, invert: bool = False):
    """NumPy reference of ``window.window_slice`` / ``window.window_batch``."""
    import numpy as np

    x = np.asarray(src).astype(np.float32)
    if width <= 1.0:
        y = np.where(x > np.float32(center - 0.5), np.float32(255), np.float32(0))
    else:
        scale = np.float32(255.0 / (width - 1.0))
        offset = np.float32(127.5 - (center - 0.5) * (255.0 / (width - 1.0)))
        y = np.clip(x * scale + offset, np.float32(0), np.float32(255))
        y = np.floor(y + np.float32(0.5))
    if invert:
        y = np.float32(255) - y
    return y.astype(np.uint8)


# ---------------------------------------------------------------------------
# phantom.py / jpeg_lossless.py references (NumPy, plain Python)
# ---------------------------------------------------------------------------
def phantom_points(pts, out):
    """NumPy reference of ``phantom.phantom_points`` (the shapes are ``phantom``'s)."""
    import numpy as np

    from .phantom import BODY, LIVER, LUNG_L, LUNG_R, MARKER, RIBS, SPINE

    p = np.asarray(pts, dtype=np.float64)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]

    def inside(shape):
        cx, cy, cz, ax, ay, az = shape
        u, v, w = (x - cx) * (1.0 / ax), (y - cy) * (1.0 / ay), (z - cz) * (1.0 / az)
        return u * u + v * v + w * w <= 1.0

    hu = np.where(inside(LIVER), 62, 40)
    hu = np.where(inside(LUNG_R), -820, hu)
    hu = np.where(inside(LUNG_L), -800, hu)
    # ribs: bands of an elliptic cylinder shell, 700 HU at the feet end rising to 1000
    half = RIBS[2]
    rx, ry = x * (1.0 / RIBS[0]), (y - BODY[1]) * (1.0 / RIBS[1])
    r2 = rx * rx + ry * ry
    zz = z + half
    band = zz - 19.3 * np.floor(zz * (1.0 / 19.3)) < 13.1
    rib = (np.abs(z) <= half) & (r2 >= 0.81) & (r2 <= 1.0) & band
    ramp = np.floor(zz * (300.0 / (2.0 * half)) + 0.5)
    hu = np.where(rib, 700 + np.where(rib, ramp, 0).astype(np.int64), hu)
    # spine: vertebrae of 900 HU and discs of 80 HU
    sx, sy = (x - SPINE[0]) * (1.0 / SPINE[2]), (y - SPINE[1]) * (1.0 / SPINE[2])
    zs = z + SPINE[3]
    spine = (sx * sx + sy * sy <= 1.0) & (np.abs(z) <= SPINE[3])
    disc = zs - 31.7 * np.floor(zs * (1.0 / 31.7)) < 4.1
    hu = np.where(spine, np.where(disc, 80, 900), hu)
    mx, my, mz, mh = MARKER
    marker = (np.abs(x - mx) <= mh) & (np.abs(y - my) <= mh) & (np.abs(z - mz) <= mh)
    hu = np.where(marker, 1200, hu)
    out[:] = np.where(inside(BODY), hu, -1000)


def phantom_slice(ipp, row, col, dr, dc, intercept, mul, out):
    """NumPy reference of ``phantom.phantom_slice``: returns (smallest, largest) stored value."""
    import numpy as np

    rows, cols = out.shape
    rr = (np.arange(rows, dtype=np.float64) * dr)[:, None]
    cc = (np.arange(cols, dtype=np.float64) * dc)[None, :]
    pts = np.stack([(ipp[k] + cc * row[k]) + rr * col[k] for k in range(3)], axis=-1)
    hu = np.empty(rows * cols, dtype=np.int64)
    phantom_points(pts.reshape(-1, 3), hu)
    v = (hu - int(intercept)) * int(mul)
    out[...] = v.reshape(rows, cols).astype(out.dtype)
    if v.size == 0:
        return 1 << 30, -(1 << 30)
    return int(v.min()), int(v.max())


def _jpeg_lossless_differences(x, precision: int):
    """Row-major DPCM differences (predictor 1, modulo 2**16, signed) and their categories."""
    import numpy as np

    a = np.asarray(x, dtype=np.int64)
    pred = np.empty_like(a)
    pred[:, 1:] = a[:, :-1]
    pred[1:, 0] = a[:-1, 0]
    pred[0, 0] = 1 << (precision - 1)
    d = (a - pred) & 0xFFFF
    d = np.where(d >= 0x8000, d - 0x10000, d).ravel().tolist()
    return d, [abs(v).bit_length() for v in d]


def jpeg_lossless_histogram(x, precision, hist):
    """Plain-Python reference of ``jpeg_lossless.jpeg_lossless_histogram`` (adds to *hist*)."""
    for s in _jpeg_lossless_differences(x, precision)[1]:
        hist[s] += 1


def jpeg_lossless_scan(x, precision, codes, sizes, out):
    """Plain-Python reference of ``jpeg_lossless.jpeg_lossless_scan``: returns the bytes written.

    Builds the scan as a string of bits: per sample the Huffman code of its
    category, then (categories 1..15) the low bits of the difference (minus
    one if negative); pads with one bits, then stuffs a zero after each 0xFF.
    """
    d, cat = _jpeg_lossless_differences(x, precision)
    bits = []
    for diff, s in zip(d, cat):
        if sizes[s]:
            bits.append(format(int(codes[s]), f"0{int(sizes[s])}b"))
        if 0 < s < 16:
            bits.append(format((diff if diff > 0 else diff - 1) & ((1 << s) - 1), f"0{s}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for i in range(0, len(stream), 8):
        data.append(int(stream[i:i + 8], 2))
        if data[-1] == 0xFF:
            data.append(0)
    out[:len(data)] = list(data)
    return len(data)


# ---------------------------------------------------------------------------
# dicomindex.py reference (plain Python, recursive where the kernel keeps a stack)
# ---------------------------------------------------------------------------
class _IndexStop(Exception):
    def __init__(self, code: int, where: int):
        super().__init__(code, where)
        self.code, self.where = code, where


def index_elements(buf: bytes, pos: int, end: int, implicit: bool, vr_kinds, sq_tags, max_depth: int):
    """Reference of :func:`pocketpacs.native.dicomindex.index_elements`.

    Returns
    -------
    (int, list of tuple, int)
        Outcome, the rows (tag, VR code, parent, start, value start, value end, end) and the
        offset where the walk stopped.
    """
    from .dicomindex import (IDX_BAD_VR, IDX_DELIM_LENGTH, IDX_DELIM_OR_ZERO, IDX_FRAG_MALFORMED,
                             IDX_FRAG_PAST_END, IDX_HEADER_PAST_END, IDX_ITEM_LONGER, IDX_LEFT_OVER, IDX_LONGER,
                             IDX_NO_ITEM_DELIM, IDX_NOT_ITEMS, IDX_OK, IDX_ORDER, IDX_SEQ_PAST_END, IDX_TOO_DEEP,
                             IDX_UNDEFINED)

    sq = {int(t) for t in sq_tags}
    rows: list[list[int]] = []

    def u16(p: int) -> int:
        return int.from_bytes(buf[p:p + 2], "little")

    def u32(p: int) -> int:
        return int.from_bytes(buf[p:p + 4], "little")

    def elements(pos: int, end: int, depth: int, parent: int, in_item: bool) -> int:
        last = -1
        while pos < end:
            if end - pos < 8:
                raise _IndexStop(IDX_LEFT_OVER, pos)
            group = u16(pos)
            tag = group << 16 | u16(pos + 2)
            vr = 0
            if implicit or group == 0xFFFE:
                length, hdr = u32(pos + 4), 8
                is_sq = implicit and group != 0xFFFE and tag in sq
            else:
                vr = buf[pos + 4] << 8 | buf[pos + 5]
                kind = int(vr_kinds[vr])
                if kind == 0:
                    raise _IndexStop(IDX_BAD_VR, pos)
                if kind == 2:
                    if end - pos < 12:
                        raise _IndexStop(IDX_HEADER_PAST_END, pos)
                    length, hdr = u32(pos + 8), 12
                else:
                    length, hdr = u16(pos + 6), 8
                is_sq = buf[pos + 4:pos + 6] == b"SQ"
            if tag == 0xFFFEE00D and in_item:
                if length != 0:
                    raise _IndexStop(IDX_DELIM_LENGTH, pos)
                rows[parent][5], rows[parent][6] = pos, pos + 8
                return pos + 8
            if group == 0xFFFE or tag == 0:
                raise _IndexStop(IDX_DELIM_OR_ZERO, pos)
            if tag <= last:
                raise _IndexStop(IDX_ORDER, pos)
            last = tag
            row = [tag, vr, parent, pos, pos + hdr, 0, 0]
            rows.append(row)
            me = len(rows) - 1
            vstart = pos + hdr
            if length == 0xFFFFFFFF:
                if is_sq:
                    pos = items(vstart, end, depth, me, None)
                elif tag == 0x7FE00010 and not implicit and buf[pos + 4:pos + 6] in (b"OB", b"OW"):
                    p = vstart
                    while True:
                        if end - p < 8:
                            raise _IndexStop(IDX_FRAG_PAST_END, p)
                        ftag, flen = u16(p) << 16 | u16(p + 2), u32(p + 4)
                        if ftag == 0xFFFEE0DD:
                            break
                        if ftag != 0xFFFEE000 or flen == 0xFFFFFFFF or p + 8 + flen > end:
                            raise _IndexStop(IDX_FRAG_MALFORMED, p)
                        p += 8 + flen
                    row[5], row[6] = p, p + 8
                    pos = p + 8
                else:
                    raise _IndexStop(IDX_UNDEFINED, pos)
            else:
                if vstart + length > end:
                    raise _IndexStop(IDX_LONGER, pos)
                row[5] = row[6] = vstart + length
                if is_sq:
                    items(vstart, vstart + length, depth, me, vstart + length)
                pos = vstart + length
        if in_item:
            raise _IndexStop(IDX_NO_ITEM_DELIM, pos)
        if parent >= 0:
            rows[parent][5] = rows[parent][6] = pos
        return pos

    def items(pos: int, end: int, depth: int, seq: int, defined_end: int | None) -> int:
        while True:
            if defined_end is not None and pos == defined_end:
                return pos
            if end - pos < 8:
                raise _IndexStop(IDX_SEQ_PAST_END, pos)
            tag, length = u16(pos) << 16 | u16(pos + 2), u32(pos + 4)
            if tag == 0xFFFEE0DD and defined_end is None:
                rows[seq][5], rows[seq][6] = pos, pos + 8
                return pos + 8
            if tag != 0xFFFEE000:
                raise _IndexStop(IDX_NOT_ITEMS, pos)
            if length != 0xFFFFFFFF and pos + 8 + length > end:
                raise _IndexStop(IDX_ITEM_LONGER, pos)
            if depth + 1 > max_depth:
                raise _IndexStop(IDX_TOO_DEEP, pos)
            rows.append([tag, 0, seq, pos, pos + 8, 0, 0])
            me = len(rows) - 1
            if length == 0xFFFFFFFF:
                pos = elements(pos + 8, end, depth + 1, me, True)
            else:
                elements(pos + 8, pos + 8 + length, depth + 1, me, False)
                pos = pos + 8 + length

    try:
        where = elements(pos, end, 0, -1, False)
    except _IndexStop as stop:
        return stop.code, [tuple(r) for r in rows], stop.where
    return IDX_OK, [tuple(r) for r in rows], where


# histogram.py references (NumPy)
def _kept(arr, drop=()):
    import numpy as np

    v = np.asarray(arr).reshape(-1)
    if v.dtype.kind == "b":
        v = v.view(np.uint8)
    v = v.astype(np.float64)
    keep = np.isfinite(v)
    for d in drop:
        keep &= v != d
    return v[keep]


def value_range(arr, drop=()):
    """NumPy reference of ``histogram.value_range``."""
    v = _kept(arr, drop)
    if not v.size:
        return float("inf"), float("-inf"), 0
    return float(v.min()), float(v.max()), int(v.size)


def int_counts(arr, lo, nbins):
    """NumPy reference of ``histogram.int_counts``."""
    import numpy as np

    v = np.asarray(arr).reshape(-1).astype(np.int64) - int(lo)
    v = v[(v >= 0) & (v < nbins)]
    return np.bincount(v, minlength=nbins).astype(np.int64)


def float_counts(arr, edges, drop=()):
    """NumPy reference of ``histogram.float_counts``."""
    import numpy as np

    return np.histogram(_kept(arr, drop), bins=np.asarray(edges, np.float64))[0].astype(np.int64)
