"""Is a checkpoint directory intact? SHA-256 sums of every file of a checkpoint, written once
the save is complete and checked before it is restored; for checkpoints written without sums
(older vasa), a structural check of the files orbax always writes.

The sums live in ``<step>/SHA256SUMS`` in ``sha256sum`` format, so ``cd checkpoints/<step> &&
sha256sum -c SHA256SUMS`` checks a checkpoint by hand. A run killed after orbax finished a
checkpoint but before its sums were written leaves a checkpoint that restores as "unverified".
"""

from __future__ import annotations

import hashlib
import json
import os

SUMS = "SHA256SUMS"
# files every orbax checkpoint of a vasa state holds (the JSON ones must parse)
REQUIRED = ("_CHECKPOINT_METADATA", "state/_METADATA", "state/manifest.ocdbt")
JSON_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA")


class IntegrityError(ValueError):
    """A checkpoint directory is damaged or incomplete; the message says what is wrong."""


def _files(step_dir: str) -> list[str]:
    """Paths of the regular files under ``step_dir``, relative to it, sorted."""
    out = []
    for root, _, names in os.walk(step_dir):
        out += [os.path.relpath(os.path.join(root, n), step_dir) for n in names]
    return sorted(p for p in out if p not in (SUMS, SUMS + ".tmp"))


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(step_dir: str) -> None:
    """Write ``SHA256SUMS`` for every file under ``step_dir`` (atomically: a kill leaves no
    partial sums file)."""
    lines = [f"{sha256(os.path.join(step_dir, p))}  {p}\n" for p in _files(step_dir)]
    tmp = os.path.join(step_dir, SUMS + ".tmp")
    with open(tmp, "w") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(step_dir, SUMS))


def check_step_dir(step_dir: str) -> str:
    """``"verified"`` (every file matches ``SHA256SUMS``) or ``"unverified"`` (no sums file,
    but the files orbax always writes are there, non-empty, and their JSON parses).

    Raises :class:`IntegrityError` naming the first problem found.
    """
    if not os.path.isdir(step_dir):
        raise IntegrityError("it is not a directory")
    if not os.listdir(step_dir):
        raise IntegrityError("the directory is empty")
    sums = os.path.join(step_dir, SUMS)
    if os.path.exists(sums):
        _verify(step_dir, sums)
        return "verified"
    _check_structure(step_dir)
    return "unverified"


def _verify(step_dir: str, sums: str) -> None:
    expected = {}
    try:
        with open(sums, encoding="utf-8") as f:
            for line in filter(str.strip, f):
                digest, path = line.rstrip("\n").split("  ", 1)
                expected[path] = digest
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise IntegrityError(f"{SUMS} is unreadable ({e})") from e
    for path, digest in sorted(expected.items()):
        full = os.path.join(step_dir, path)
        if not os.path.isfile(full):
            raise IntegrityError(f"{path} is missing (listed in {SUMS})")
        if sha256(full) != digest:
            raise IntegrityError(f"{path} does not match its SHA-256 sum in {SUMS} (the file was changed "
                                         f"or damaged after the checkpoint was written)")


def _check_structure(step_dir: str) -> None:
    for path in REQUIRED:
        if not os.path.isfile(os.path.join(step_dir, path)):
            raise IntegrityError(f"{path} is missing")
    for path in _files(step_dir):
        if os.path.getsize(os.path.join(step_dir, path)) == 0:
            raise IntegrityError(f"{path} is empty (0 bytes)")
    for path in JSON_FILES:
        try:
            with open(os.path.join(step_dir, path), encoding="utf-8") as f:
                json.load(f)
        except (UnicodeDecodeError, ValueError) as e:
            raise IntegrityError(f"{path} is not valid JSON ({e})") from e
