"""Start-up checks of the data directory that receivers and workers share.

Every process sharing one database reads and writes instance and result files
by their paths in the index, so they must all see one file system with POSIX
semantics: atomic rename, fsync honoured, a file visible to every process once
renamed. Two mistakes are common in clusters and are caught here, before the
process takes any work:

- a volume that is not shared (a worker given an empty local volume): the
  database keeps a random *storage token* that the first process wrote into
  the data directory; a process that does not find the same token there is
  looking at another directory and refuses to start;
- a file system that does not keep the promises above (object stores mounted
  through FUSE): refused; network file systems are accepted with a warning
  about their mount options.
A write probe (create, fsync, rename, read back) runs in every case.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.files import write_durably
from dicom_node.store.models import ClusterSetting

log = logging.getLogger(__name__)

TOKEN_FILE = ".dicom-node-storage"
TOKEN_KEY = "storage_token"
TOKEN_WAIT_SECONDS = 5.0
# Mounted object stores: no atomic rename, no fsync, no read-after-write for other clients.
UNSAFE_FILE_SYSTEMS = ("fuse.s3fs", "fuse.gcsfuse", "fuse.goofys", "fuse.mountpoint-s3", "fuse.blobfuse", "fuse.blobfuse2", "fuse.rclone")
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "fuse.sshfs")


class StorageError(Exception):
    """The data directory cannot be used as it is; the message says why and what to do."""


def _mount_of(path: Path) -> tuple[str, str, str]:
    """(mount point, file system type, device major:minor) of the mount holding `path`, from /proc/self/mountinfo."""
    path = path.resolve()
    best = ("", "", "")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        fields = line.split()
        mount_point = fields[4].replace("\\040", " ")
        inside = path == Path(mount_point) or Path(mount_point) in path.parents
        if inside and len(mount_point) >= len(best[0]):
            best = (mount_point, fields[fields.index("-") + 1], fields[2])
    return best


def file_system_type(path: Path) -> str:
    """The type of the file system holding `path` ('' where unknown)."""
    return _mount_of(path)[1]


def has_ordered_journal(path: Path) -> bool:
    """Whether the file system holding `path` commits its metadata in order through a journal (XFS, journaled ext4).

    There an fsync of any file also makes the renames made before it durable. ext4 may run without a
    journal (mkfs -O ^has_journal, common on VM images): its journals are listed in /proc/fs/jbd2 by
    block device name, and a file system without one is not there.
    """
    return _journaled(*_mount_of(path)[1:])


def _journaled(fstype: str, device: str) -> bool:
    if fstype == "xfs":
        return True
    if fstype not in ("ext3", "ext4"):
        return False
    try:
        name = Path(f"/sys/dev/block/{device}").resolve().name
        return any(entry.name.rsplit("-", 1)[0] == name for entry in Path("/proc/fs/jbd2").iterdir())
    except OSError:
        return False


def directory_sync_needed(setting: bool | str, data_dir: Path, index_url: str) -> tuple[bool, str]:
    """Whether a replaced instance's rename needs a directory fsync of its own (`dicom.sync_directories`), and why."""
    if setting != "auto":
        return bool(setting), "dicom.sync_directories is set"
    if not index_url.startswith("sqlite"):
        return True, "the index is not an SQLite file beside the data"
    index_path = Path(index_url.split("///", 1)[-1])
    mount_point, fstype, device = _mount_of(data_dir)
    if _mount_of(index_path.parent)[0] != mount_point:
        return True, f"the index {index_path} is on another file system than the data"
    if not _journaled(fstype, device):
        return True, f"the data dir is on {fstype or 'an unknown file system'} without an ordered journal"
    return False, "the index commit's fsync also commits the renames (journaling file system holding both)"


def new_entry_sync_needed(setting: bool | str, data_dir: Path) -> tuple[bool, str]:
    """Whether a newly created instance file needs a directory fsync besides its own (`dicom.sync_directories`), and why.

    On ext4 and XFS the fsync of a new file also makes its directory entry durable: with a journal, the entry
    is in the transaction that the fsync commits; ext4 without a journal writes the new file's parent
    directories in the same fsync (ext4_sync_parent). Other file systems promise it only for a directory fsync.
    """
    if setting != "auto":
        return bool(setting), "dicom.sync_directories is set"
    fstype = _mount_of(data_dir)[1]
    if fstype in ("ext3", "ext4", "xfs"):
        return False, f"on {fstype}, a new file's fsync also makes its name durable"
    return True, f"the data dir is on {fstype or 'an unknown file system'}"


def _probe(data_dir: Path) -> None:
    probe = data_dir / f".probe-{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    try:
        write_durably(probe, payload)
        if probe.read_bytes() != payload:
            raise StorageError(f"data directory {data_dir}: a file written and renamed there reads back different bytes")
    except OSError as exc:
        raise StorageError(f"data directory {data_dir} is not writable by this process ({exc.strerror}): fix its owner or mode") from exc
    finally:
        probe.unlink(missing_ok=True)


def _database_token(sessions: sessionmaker[Session], candidate: str) -> tuple[str, bool]:
    """The database's storage token, created as `candidate` if there is none; True if this call created it."""
    try:
        with sessions.begin() as session:
            session.add(ClusterSetting(key=TOKEN_KEY, value=candidate))
        return candidate, True
    except IntegrityError:
        with sessions() as session:
            return session.scalars(select(ClusterSetting.value).where(ClusterSetting.key == TOKEN_KEY)).one(), False


def _check_token(sessions: sessionmaker[Session], data_dir: Path) -> None:
    token, created = _database_token(sessions, uuid.uuid4().hex)
    path = data_dir / TOKEN_FILE
    if created:
        write_durably(path, token.encode())
        return
    deadline = time.monotonic() + TOKEN_WAIT_SECONDS  # the process that created it may be writing the file right now
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    found = path.read_text().strip() if path.exists() else None
    if found != token:
        what = "has no storage token" if found is None else f"holds storage token {found}"
        raise StorageError(
            f"data directory {data_dir} {what}, but the database's is {token}: this process does not see the storage "
            f"that the other processes of this database write to. Mount the same shared volume at node.data_dir "
            f"(or, if the data were moved on purpose, copy {TOKEN_FILE} along)."
        )


def check_data_dir(sessions: sessionmaker[Session], data_dir: Path) -> str:
    """Refuse a data directory that other processes of the database do not share or that cannot keep our promises."""
    fstype = file_system_type(data_dir)
    if fstype in UNSAFE_FILE_SYSTEMS:
        raise StorageError(
            f"data directory {data_dir} is on {fstype}, an object store without atomic rename or fsync: "
            "use a block volume or a POSIX network file system"
        )
    if fstype in NETWORK_FILE_SYSTEMS:
        log.warning(
            "data directory %s is on %s: mount it hard (not soft) with close-to-open consistency, and export it "
            "'sync' so that fsync reaches the server before a C-STORE is acknowledged",
            data_dir,
            fstype,
        )
    _probe(data_dir)
    _check_token(sessions, data_dir)
    log.info("data directory %s (%s, pid %d) checked: writable, shared storage token matches", data_dir, fstype or "unknown", os.getpid())
    return fstype
