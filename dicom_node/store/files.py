"""Durable instance files: what the SCP has acknowledged must survive a crash.

Each instance is written as received (preamble, file meta, the raw encoded
dataset: pixel data never decoded or recompressed). A new instance is created
under its final name and fsynced (`create_durably`); a file that replaces
another is written to a temporary file in its final directory, fsynced and
renamed into place (`write_durably`), so an acknowledged file is never left
half overwritten. Either way the directory is fsynced where the file system
needs it (`shared_storage`). A crash while a new instance is written can leave
part of it under its final name, unacknowledged and without an index row: the
receive path treats such a file as absent and replaces it when the instance is
sent again. Paths are built from sanitised UIDs: a UID from the wire is not
trusted as a file name.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import struct
import time
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dsutils import create_file_meta

PRIVATE_UMASK = 0o077  # files 0600, directories 0700: patient data and names are the service user's alone
_UNSAFE = re.compile(r"[^0-9A-Za-z.]")
_MAX_COMPONENT = 64
# Temporary files are named after their writer, `.<name>.<host>~<pid>.<n>.tmp`: on shared storage a process
# starting up removes only those of dead processes of its own host (and any left for an hour by another host).
_HOST = re.sub(r"[^0-9A-Za-z]", "_", socket.gethostname())
_TMP_WRITER = re.compile(r"\.(?P<host>[0-9A-Za-z_]+)~(?P<pid>\d+)\.[0-9a-f]+\.tmp$")
FOREIGN_TMP_SECONDS = 3600


def safe_component(uid: str) -> str:
    """A file-name component for a UID: the UID itself when it is tame, else a readable prefix plus a hash."""
    cleaned = _UNSAFE.sub("_", uid.strip())[:48].strip(".") or "_"
    if cleaned == uid and len(uid) <= _MAX_COMPONENT:
        return uid
    return f"{cleaned}-{hashlib.sha256(uid.encode()).hexdigest()[:12]}"


def instance_relpath(study_uid: str, series_uid: str, sop_uid: str) -> Path:
    return Path("instances") / safe_component(study_uid) / safe_component(series_uid) / f"{safe_component(sop_uid)}.dcm"


def encode_file_header(file_meta: FileMetaDataset) -> bytes:
    """Preamble, 'DICM' and the group 0002 elements of a Part 10 file."""
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, file_meta, enforce_standard=True)  # type: ignore[arg-type]
    return buffer.getvalue()


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element with a 2-byte length (UI, SH)."""
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def part10_header(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """The header of a received instance's file: the bytes `encode_file_header` writes for pynetdicom's
    `create_file_meta` (the C-STORE's UIDs, pynetdicom's implementation UID and version), built directly.

    pydicom's file meta writer and pynetdicom's UID validation cost ~0.15 ms of CPU per image under the interpreter
    lock, before every C-STORE answer; this costs a few microseconds. Anything unusual (a non-ASCII or huge value)
    takes pydicom's way, so the bytes are the same whichever way they were made."""
    try:
        uids = [uid.encode("ascii") for uid in (sop_class_uid, sop_instance_uid, transfer_syntax_uid, PYNETDICOM_IMPLEMENTATION_UID)]
        version = PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii")
    except UnicodeEncodeError:
        uids = []
    if not uids or any(len(value) > 0xFFFE for value in uids):
        meta = create_file_meta(sop_class_uid=UID(sop_class_uid), sop_instance_uid=UID(sop_instance_uid), transfer_syntax=UID(transfer_syntax_uid))
        return encode_file_header(meta)
    pad = [value + b"\0" * (len(value) % 2) for value in uids]  # UI pads with NUL, SH with a space
    body = (
        struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"
        + _element(0x00020002, b"UI", pad[0]) + _element(0x00020003, b"UI", pad[1]) + _element(0x00020010, b"UI", pad[2])
        + _element(0x00020012, b"UI", pad[3]) + _element(0x00020013, b"SH", version + b" " * (len(version) % 2))
    )
    return b"\x00" * 128 + b"DICM" + struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` (a file just created, renamed or linked there) survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs_durably(directory: Path) -> None:
    """Create missing parents and fsync each new one's parent, so the directory entries survive a crash too."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync_dir(folder.parent)


def write_durably(path: Path, *chunks: bytes | memoryview, sync_directory: bool = True) -> int:
    """Write chunks to `path` atomically and durably; return the size written.

    `sync_directory=False` leaves the rename to be made durable by the caller's next fsync of any file on the same
    journaling file system (ext4, XFS commit their journal in order): the SCP's index commit does exactly that, and
    skipping a directory fsync per instance halves the cost of a durable write.
    """
    _make_dirs_durably(path.parent)
    tmp = path.with_name(f".{path.name}.{_HOST}~{os.getpid()}.{id(chunks):x}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        size = _write_and_sync(fd, chunks)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if sync_directory:
        fsync_dir(path.parent)
    return size


def create_durably(path: Path, *chunks: bytes | memoryview, sync_directory: bool = True) -> int:
    """Create `path` with the chunks and fsync it; return the size written. FileExistsError: the name is taken.

    No temporary, no rename: on ext4 and XFS the file's fsync also makes its new name durable, where a rename
    needs a directory fsync (or a journal commit) of its own: one device flush per instance instead of two.
    `sync_directory`: fsync the directory too (file systems that do not promise that).
    A failed write leaves the name holding nothing (truncated, not removed: a writer that found the name
    taken may have renamed its own complete copy over it meanwhile).
    """
    _make_dirs_durably(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        size = _write_and_sync(fd, chunks)
    except BaseException:
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        raise
    os.close(fd)
    if sync_directory:
        fsync_dir(path.parent)
    return size


def _write_and_sync(fd: int, chunks: tuple[bytes | memoryview, ...]) -> int:
    size = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            size += written
    os.fsync(fd)
    return size


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(tmp: Path, host: str, now: float) -> bool:
    """A temporary file no live writer will rename: its process (on this host) died, or it is an hour old."""
    match = _TMP_WRITER.search(tmp.name)
    if match and match["host"] == host:
        return int(match["pid"]) != os.getpid() and not _pid_alive(int(match["pid"]))
    try:
        return now - tmp.stat().st_mtime > FOREIGN_TMP_SECONDS
    except FileNotFoundError:
        return False  # renamed into place meanwhile


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files of crashed writers (never acknowledged, so nothing is lost); return how many.

    Other live processes sharing the data directory (receivers on other hosts, or beside this one) may be
    writing theirs right now: only files whose writer is known dead, or that are an hour old, are removed.
    """
    now = time.time()
    count = 0
    for tmp in root.rglob(".*.tmp"):
        if _abandoned(tmp, _HOST, now):
            tmp.unlink(missing_ok=True)
            count += 1
    return count


def make_private(data_dir: Path) -> None:
    """From now on this process creates files readable by its own user only, whatever umask it was started with
    (the index and its -wal/-shm, instances, results, the access log); the data dir itself becomes 0700, which
    also closes files an older version left readable to others."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
