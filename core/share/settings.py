"""Named sharing profiles, kept in a small settings file next to the archive.

``<archive>/share-profiles.json`` (0600) names de-identification profiles:
each a set of PS3.15 options (:data:`~.profile_table.OPTIONS`), additions to
the Retain Safe Private allowlist, whether images that may carry burned-in
text are exported, and rules that blank burned-in text
(:class:`~.blanking.BlankRule`: image size, maker, rectangles).  Rules listed
at the top level apply to every profile.  :func:`load_profiles` reads and
checks the file (a bad file raises :class:`ProfileSettingsError` naming the
file and the key, never a traceback), :func:`save_profiles` writes it, and
``export_dicom(..., profile=NAME)`` / ``pocketpacs export ... --profile NAME``
use a profile.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PocketPacsError
from ..paths import read_private_file, write_private_file
from .blanking import BlankRule
from .profile_table import OPTIONS, OptionsError, check_options

#: The settings file's name in the archive folder.
SETTINGS_FILE = "share-profiles.json"
#: Largest settings file read.
MAX_BYTES = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_PRIVATE_TAG = re.compile(r"^\(?([0-9A-Fa-f]{4}),\s*[xX]{2}([0-9A-Fa-f]{2})\)?$")
_PROFILE_KEYS = {"options", "private", "allow_burned_in", "blanking", "description"}
_RULE_KEYS = {"name", "rows", "columns", "manufacturer", "model", "modality", "rectangles"}


class ProfileSettingsError(PocketPacsError):
    """The sharing settings file is unreadable or invalid, or names no such profile (the message says which key)."""


@dataclass(frozen=True)
class SharingProfile:
    """One named profile of the settings file.

    Attributes
    ----------
    name : str
    options : tuple of str
        PS3.15 options (names of :data:`~.profile_table.OPTIONS`).
    private : frozenset of (str, int, int)
        Allowlist additions: (private creator, group, element byte within the block).
    allow_burned_in : bool
        Export images that may carry burned-in text although no rule covers them.
    blanking : tuple of BlankRule
        The profile's rules, then the file's shared ones.
    description : str
    """
    name: str
    options: tuple[str, ...] = ()
    private: frozenset[tuple[str, int, int]] = frozenset()
    allow_burned_in: bool = False
    blanking: tuple[BlankRule, ...] = ()
    description: str = ""

    def summary(self) -> dict[str, Any]:
        """What the UI lists of the profile.

        Returns
        -------
        dict
            ``name``, ``description``, ``options``, ``private`` and ``rules`` (counts), ``allow_burned_in``.
        """
        return {"name": self.name, "description": self.description, "options": list(self.options),
                "private": len(self.private), "rules": len(self.blanking), "allow_burned_in": self.allow_burned_in}


@dataclass
class _Ctx:
    source: str


def _fail(ctx: _Ctx, key: str, why: str) -> ProfileSettingsError:
    return ProfileSettingsError(f"{ctx.source}: {key}: {why}")


def _int(ctx: _Ctx, key: str, v: Any, low: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise _fail(ctx, key, f"must be a whole number >= {low}, not {json.dumps(v)[:40]}")
    return v


def _text(ctx: _Ctx, key: str, v: Any, required: bool = True) -> str | None:
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise _fail(ctx, key, "must be a non-empty text")
    return v.strip()


def _rule(ctx: _Ctx, key: str, doc: Any) -> BlankRule:
    if not isinstance(doc, dict):
        raise _fail(ctx, key, "must be an object with rows, columns, manufacturer and rectangles")
    unknown = set(doc) - _RULE_KEYS
    if unknown:
        raise _fail(ctx, f"{key}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(_RULE_KEYS))})")
    for k in ("rows", "columns", "manufacturer", "rectangles"):
        if k not in doc:
            raise _fail(ctx, f"{key}.{k}", "missing")
    rows, cols = _int(ctx, f"{key}.rows", doc["rows"], 1), _int(ctx, f"{key}.columns", doc["columns"], 1)
    rects = doc["rectangles"]
    if not isinstance(rects, list) or not rects:
        raise _fail(ctx, f"{key}.rectangles", "must be a non-empty list of [x, y, w, h]")
    out = []
    for i, r in enumerate(rects):
        rk = f"{key}.rectangles[{i}]"
        if not isinstance(r, list) or len(r) != 4:
            raise _fail(ctx, rk, "must be [x, y, w, h] (pixels)")
        x, y = _int(ctx, rk, r[0]), _int(ctx, rk, r[1])
        w, h = _int(ctx, rk, r[2], 1), _int(ctx, rk, r[3], 1)
        if x >= cols or y >= rows:
            raise _fail(ctx, rk, f"starts outside the {cols}x{rows} image")
        out.append((x, y, min(w, cols - x), min(h, rows - y)))
    name = _text(ctx, f"{key}.name", doc.get("name", f"{cols}x{rows} {doc['manufacturer']}"))
    return BlankRule(name=str(name), rows=rows, columns=cols,
                     manufacturer=str(_text(ctx, f"{key}.manufacturer", doc["manufacturer"])),
                     rectangles=tuple(out), model=_text(ctx, f"{key}.model", doc.get("model"), False),
                     modality=_text(ctx, f"{key}.modality", doc.get("modality"), False))


def _rules(ctx: _Ctx, key: str, doc: Any) -> tuple[BlankRule, ...]:
    if not isinstance(doc, list):
        raise _fail(ctx, key, "must be a list of rules")
    return tuple(_rule(ctx, f"{key}[{i}]", r) for i, r in enumerate(doc))


def _private(ctx: _Ctx, key: str, doc: Any) -> frozenset[tuple[str, int, int]]:
    if not isinstance(doc, list):
        raise _fail(ctx, key, 'must be a list of {"creator": ..., "tag": "gggg,xxee"}')
    out = set()
    for i, e in enumerate(doc):
        ek = f"{key}[{i}]"
        if not isinstance(e, dict) or set(e) != {"creator", "tag"}:
            raise _fail(ctx, ek, 'must be {"creator": "PRIVATE CREATOR", "tag": "gggg,xxee"}')
        m = _PRIVATE_TAG.match(str(e["tag"]).strip())
        if m is None or not int(m.group(1), 16) & 1:
            raise _fail(ctx, f"{ek}.tag", "must name a private element as gggg,xxee (odd group, ee its "
                                          "element byte within the creator's block)")
        creator = _text(ctx, f"{ek}.creator", e["creator"])
        out.add((str(creator).upper(), int(m.group(1), 16), int(m.group(2), 16)))
    return frozenset(out)


def parse_profiles(doc: Any, source: str = SETTINGS_FILE) -> dict[str, SharingProfile]:
    """Check a settings document and return its profiles.

    Parameters
    ----------
    doc : object
        The decoded JSON: ``{"profiles": {NAME: {...}}, "blanking": [rules]}``.
    source : str
        How error messages name the file.

    Returns
    -------
    dict of str to SharingProfile

    Raises
    ------
    ProfileSettingsError
        A key that is unknown, missing or of the wrong kind (the message names it).
    """
    ctx = _Ctx(source)
    if not isinstance(doc, dict):
        raise _fail(ctx, "(top level)", 'must be an object {"profiles": {...}, "blanking": [...]}')
    unknown = set(doc) - {"profiles", "blanking", "version"}
    if unknown:
        raise _fail(ctx, sorted(unknown)[0], "unknown key (known: profiles, blanking, version)")
    shared = _rules(ctx, "blanking", doc.get("blanking", []))
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict):
        raise _fail(ctx, "profiles", "must be an object of named profiles")
    out: dict[str, SharingProfile] = {}
    for name, p in profiles.items():
        key = f"profiles.{name}"
        if not _NAME.match(name):
            raise _fail(ctx, key, "a profile name is 1-64 letters, digits, spaces, '_', '.' or '-'")
        if not isinstance(p, dict):
            raise _fail(ctx, key, "must be an object (options, private, allow_burned_in, blanking, description)")
        bad = set(p) - _PROFILE_KEYS
        if bad:
            raise _fail(ctx, f"{key}.{sorted(bad)[0]}", f"unknown key (known: {', '.join(sorted(_PROFILE_KEYS))})")
        opts = p.get("options", [])
        if not isinstance(opts, list):
            raise _fail(ctx, f"{key}.options", "must be a list of option names")
        for i, o in enumerate(opts):
            if o not in OPTIONS:
                raise _fail(ctx, f"{key}.options[{i}]", f"unknown option {json.dumps(o)[:40]} "
                                                        f"(known: {', '.join(OPTIONS)})")
        try:
            check_options(opts)
        except OptionsError as e:  # options that exclude each other
            raise _fail(ctx, f"{key}.options", str(e)) from None
        private = _private(ctx, f"{key}.private", p.get("private", []))
        if private and "safe-private" not in opts:
            opts = [*opts, "safe-private"]  # an allowlist addition implies the option
        allow = p.get("allow_burned_in", False)
        if not isinstance(allow, bool):
            raise _fail(ctx, f"{key}.allow_burned_in", "must be true or false")
        desc = p.get("description", "")
        if not isinstance(desc, str):
            raise _fail(ctx, f"{key}.description", "must be a text")
        out[name] = SharingProfile(name, tuple(dict.fromkeys(opts)), private, allow,
                                   _rules(ctx, f"{key}.blanking", p.get("blanking", [])) + shared, desc[:200])
    return out


def settings_path(archive: Any) -> Path:
    """The settings file of an archive (``<archive folder>/share-profiles.json``).

    Parameters
    ----------
    archive : pocketpacs.Archive

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ProfileSettingsError
        An in-memory archive (it has no folder).
    """
    if getattr(archive, "path", None) is None:
        raise ProfileSettingsError("an archive in memory has no sharing settings file")
    return Path(archive.path) / SETTINGS_FILE


def load_profiles(where: Any) -> dict[str, SharingProfile]:
    """The named profiles of a settings file ({} when it does not exist).

    Parameters
    ----------
    where : pocketpacs.Archive or path-like
        An archive (its ``share-profiles.json``) or the settings file itself.

    Returns
    -------
    dict of str to SharingProfile

    Raises
    ------
    ProfileSettingsError
        The file cannot be read, is not JSON, or has a bad key (the message names the file and the key).
    """
    path = Path(where) if isinstance(where, (str, os.PathLike)) else settings_path(where)
    try:
        raw = read_private_file(path, MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ProfileSettingsError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    if len(raw) > MAX_BYTES:
        raise ProfileSettingsError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProfileSettingsError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ProfileSettingsError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return parse_profiles(doc, str(path))


def get_profile(where: Any, name: str) -> SharingProfile:
    """One named profile.

    Parameters
    ----------
    where : pocketpacs.Archive or path-like
        As :func:`load_profiles` takes it.
    name : str

    Returns
    -------
    SharingProfile

    Raises
    ------
    ProfileSettingsError
        A bad settings file, or no profile of that name (the message lists the names there are).
    """
    profiles = load_profiles(where)
    if name not in profiles:
        path = Path(where) if isinstance(where, (str, os.PathLike)) else settings_path(where)
        known = ", ".join(sorted(profiles)) or "none"
        raise ProfileSettingsError(f"{path}: profiles.{name}: no such profile (defined: {known})")
    return profiles[name]


def save_profiles(where: Any, doc: dict[str, Any]) -> dict[str, SharingProfile]:
    """Check a settings document and write it (0600, atomically).

    Parameters
    ----------
    where : pocketpacs.Archive or path-like
        As :func:`load_profiles` takes it.
    doc : dict
        The whole document (``{"profiles": {...}, "blanking": [...]}``).

    Returns
    -------
    dict of str to SharingProfile
        The profiles written.

    Raises
    ------
    ProfileSettingsError
        A bad document (nothing is written).
    """
    path = Path(where) if isinstance(where, (str, os.PathLike)) else settings_path(where)
    profiles = parse_profiles(doc, str(path))
    write_private_file(path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return profiles
