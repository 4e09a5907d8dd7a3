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
