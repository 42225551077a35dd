"""Secret files on a node: opened with the node's key onto a tmpfs, 0400 files in 0500
folders owned by the replica's user; refused off a tmpfs, without a key or for an id that
is not a folder name; removed with the replica, and leftovers swept."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.sealing import SealingKey
from services.node_agent.runtime import RuntimeStartError
from services.node_agent.secret_files import STALE_AFTER_S, SecretFiles, filesystem_of

KEY = SealingKey(bytes(range(32)))
MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
tmpfs /dev/shm/x\\040y ext4 rw 0 0
"""


def test_the_filesystem_of_a_path_is_its_longest_mount_point() -> None:
    assert filesystem_of("/dev/shm/shoal/n1", MOUNTS) == "tmpfs"
    assert filesystem_of("/dev/shmem", MOUNTS) == "ext4"
    assert filesystem_of("/dev/shm/x y/z", MOUNTS) == "ext4"
    assert filesystem_of("/srv", "") == ""


@pytest.fixture
def root() -> Iterator[Path]:
    """A node's folder of secret files, as the agent keeps it: under a folder of its own."""
    base = Path("/dev/shm") / f"shoal-test-secrets-{os.getpid()}"
    yield base / "n1"
    shutil.rmtree(base, ignore_errors=True)


def test_secrets_become_private_files_of_the_replicas_user(root: Path) -> None:
    files = SecretFiles(root, KEY)
    sealed = [KEY.seal("db", 2, {"password": "hunter2", "user": "app"}, holder="rev")]
    with pytest.raises(RuntimeStartError, match="sealed for another revision"):
        files.write("f-1-abc", sealed, "65534:65534", "another-rev")
    folder = Path(files.write("f-1-abc", sealed, "65534:65534", "rev"))
    assert folder == root / "f-1-abc"
    password = folder / "db" / "password"
    assert password.read_text() == "hunter2"
    for path, mode in ((password, 0o400), (folder / "db", 0o500), (folder, 0o500)):
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, 65534, 65534)
    assert files.write("f-1-abc", sealed, "65534:65534", "rev") == str(folder)  # a retry
    files.remove("f-1-abc")
    assert not folder.exists()


def test_secrets_are_refused_without_a_key_off_a_tmpfs_or_for_a_bad_id(
    root: Path, tmp_path: Path
) -> None:
    sealed = [KEY.seal("db", 1, {"a": "b"})]
    with pytest.raises(RuntimeStartError, match=r"no sealing key.*SHOAL_SECRETS_KEY_FILE"):
        SecretFiles(root, None).write("r1", sealed, "1000:1000", "")
    with pytest.raises(RuntimeStartError, match="secrets go on a tmpfs"):
        SecretFiles(tmp_path / "disk", KEY).write("r1", sealed, "1000:1000", "")
    for bad in ("../up", ".hidden", "a/b", ""):
        with pytest.raises(RuntimeStartError, match="cannot name a folder"):
            SecretFiles(root, KEY).write(bad, sealed, "1000:1000", "")
    other = SealingKey(os.urandom(32))
    with pytest.raises(RuntimeStartError, match="sealed with key"):
        SecretFiles(root, other).write("r1", sealed, "1000:1000", "")
    assert not (root / "r1").exists()


def test_a_folder_someone_else_made_or_linked_is_refused(root: Path, tmp_path: Path) -> None:
    sealed = [KEY.seal("db", 1, {"a": "b"})]
    base = root.parent
    base.mkdir(mode=0o700)
    (base / "linked").symlink_to(tmp_path)
    with pytest.raises(RuntimeStartError, match=r"not the node-agent's own folder.*a link"):
        SecretFiles(base / "linked", KEY).write("r1", sealed, "1000:1000", "")
    (base / "open").mkdir()
    (base / "open").chmod(0o777)
    with pytest.raises(RuntimeStartError, match="mode 777"):
        SecretFiles(base / "open", KEY).write("r1", sealed, "1000:1000", "")
    (base / "theirs").mkdir(mode=0o700)
    os.chown(base / "theirs", 1000, 1000)
    with pytest.raises(RuntimeStartError, match="uid 1000"):
        SecretFiles(base / "theirs", KEY).write("r1", sealed, "1000:1000", "")
    assert not list(tmp_path.iterdir())


def test_leftover_folders_are_swept_when_stale_and_not_kept(root: Path) -> None:
    then = 1_000_000.0
    for replica, age in (("kept", 500.0), ("gone", STALE_AFTER_S + 1), ("new", 1.0)):
        (root / replica).mkdir(parents=True)
        os.utime(root / replica, (then - age, then - age))
    SecretFiles(root, KEY).sweep({"kept"}, now=then)
    assert sorted(p.name for p in root.iterdir()) == ["kept", "new"]
