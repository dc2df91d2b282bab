"""Whether a received instance's file gets a directory fsync of its own (`dicom.sync_directories`): a rename's, a new file's."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.store.shared_storage import directory_sync_needed, file_system_type, has_ordered_journal, new_entry_sync_needed


def jbd2_journals() -> set[str]:
    """The block devices whose ext3/ext4 journal the kernel runs, as /proc/fs/jbd2 lists them (name-inode)."""
    folder = Path("/proc/fs/jbd2")
    return {entry.name.rsplit("-", 1)[0] for entry in folder.iterdir()} if folder.is_dir() else set()


def test_an_explicit_setting_is_obeyed(tmp_path: Path) -> None:
    assert directory_sync_needed(True, tmp_path, f"sqlite:///{tmp_path}/index.sqlite3")[0] is True
    assert directory_sync_needed(False, tmp_path, "postgresql://db/node")[0] is False


def test_an_index_that_is_not_a_sqlite_file_on_the_data_file_system_does_not_commit_the_renames(tmp_path: Path) -> None:
    assert directory_sync_needed("auto", tmp_path, "postgresql://db/node") == (True, "the index is not an SQLite file beside the data")
    if Path("/dev/shm").is_dir() and file_system_type(Path("/dev/shm")) != file_system_type(tmp_path):
        needed, why = directory_sync_needed("auto", tmp_path, "sqlite:////dev/shm/index.sqlite3")
        assert needed and "another file system" in why


def test_a_file_system_without_an_ordered_journal_gets_the_directory_fsync(tmp_path: Path) -> None:
    """On this kind of machine the data disk is ext4 created without a journal: the rename is in no commit."""
    fstype = file_system_type(tmp_path)

    needed, why = directory_sync_needed("auto", tmp_path, f"sqlite:///{tmp_path}/index.sqlite3")

    if fstype == "xfs":
        assert not needed
    elif fstype in ("ext3", "ext4") and not jbd2_journals():  # no journal anywhere: certainly none here
        assert needed and "ext4 without an ordered journal" in why.replace("ext3", "ext4")
    elif fstype in ("ext3", "ext4"):
        assert needed is not has_ordered_journal(tmp_path)
    else:
        assert needed and "without an ordered journal" in why


def test_tmpfs_is_not_journaled() -> None:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    assert not has_ordered_journal(Path("/dev/shm"))


def test_a_new_files_name_needs_no_directory_fsync_on_ext4_or_xfs_only(tmp_path: Path) -> None:
    """ext4 (journal or not) and XFS make a new file's name durable in its own fsync; tmpfs and others are not trusted."""
    assert new_entry_sync_needed(True, tmp_path)[0] is True
    assert new_entry_sync_needed(False, tmp_path)[0] is False
    needed, why = new_entry_sync_needed("auto", tmp_path)
    assert needed is (file_system_type(tmp_path) not in ("ext3", "ext4", "xfs")), why
    if Path("/dev/shm").is_dir():
        assert new_entry_sync_needed("auto", Path("/dev/shm")) == (True, "the data dir is on tmpfs")
