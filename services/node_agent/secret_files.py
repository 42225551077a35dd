"""A replica's secrets as files: opened with the node's sealing key and written on a tmpfs
(never the node's disk), one folder per replica, bind-mounted read-only at SECRETS_PATH.
Files are mode 0400 and folders 0500, owned by the user the replica runs as."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from events.types import SealedSecret
from services.common.sealing import KEY_SOURCES, SealingKey, UnsealError
from services.node_agent.runtime import RuntimeStartError

log = logging.getLogger("shoal.node.secrets")
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,252}")
STALE_AFTER_S = 60.0
"""A folder with no container this much after it was written is a leftover."""


SECRETS_BASE = Path("/dev/shm/shoal-secrets")
"""Where nodes keep their replicas' secret files unless told (/dev/shm is a tmpfs)."""


def secrets_dir_of(node_id: str, base: Path | None = None) -> Path:
    """A node's own folder of secret files, under `base` (SECRETS_BASE by default); a node
    id of dots or other characters cannot lead out of it."""
    return (base or SECRETS_BASE) / ("node-" + re.sub(r"[^A-Za-z0-9_-]", "_", node_id))


def filesystem_of(path: str, mounts: str) -> str:
    """The type of the filesystem `path` lies on, from /proc/self/mounts text (pure)."""
    best, kind = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def owner_ids(user: str) -> tuple[int, int]:
    """uid and gid of a numeric `uid:gid` (what `sandbox.run_as` gives)."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


@dataclass
class SecretFiles:
    root: Path
    """This node's folder of replica folders, on a tmpfs."""
    key: SealingKey | None
    on_tmpfs: bool = False
    """Whether `root` was found on a tmpfs (looked at once)."""

    def write(self, replica_id: str, sealed: list[SealedSecret], user: str, holder: str) -> str:
        """The replica's folder of secret files (made once; a retry finds it made). Each
        secret opens only if it was sealed for `holder`, the identity of the revision the
        start command runs (`spec_identity`)."""
        folder = self._folder(replica_id)
        if folder.exists():
            return str(folder)
        opened = {s.name: self._open(s, holder) for s in sealed}
        self._check_tmpfs()
        uid, gid = owner_ids(user)
        staging = self.root / f".{replica_id}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(mode=0o700)
            for name, values in opened.items():
                (staging / name).mkdir(mode=0o700)
                for key, value in values.items():
                    _write_private(staging / name / key, value.encode(), uid, gid)
                _own(staging / name, uid, gid, 0o500)
            _own(staging, uid, gid, 0o500)
            staging.rename(folder)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeStartError(f"could not write its secrets on {self.root}: {exc}") from exc
        return str(folder)

    def remove(self, replica_id: str) -> None:
        if SAFE_NAME.fullmatch(replica_id) and (self.root / replica_id).exists():
            self._remove(self.root / replica_id)

    def sweep(self, keep: set[str], now: float | None = None) -> None:
        """Remove the folders of replicas not in `keep` written over STALE_AFTER_S ago
        (only in a folder that is the agent's own)."""
        try:
            _check_own(self.root)
        except (OSError, RuntimeStartError):
            return
        now = time.time() if now is None else now
        for entry in self.root.iterdir():
            name = entry.name.lstrip(".").split(".")[0]
            if name not in keep and now - entry.lstat().st_mtime > STALE_AFTER_S:
                self._remove(entry)

    def _remove(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log.warning("secret files left behind", extra={"fields": {"folder": str(folder)}})

    def _folder(self, replica_id: str) -> Path:
        if not SAFE_NAME.fullmatch(replica_id):
            raise RuntimeStartError(f"replica id {replica_id!r} cannot name a folder")
        self.root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        for folder in (self.root.parent, self.root):
            _check_own(folder)
        return self.root / replica_id

    def _open(self, sealed: SealedSecret, holder: str) -> dict[str, str]:
        if self.key is None:
            raise RuntimeStartError(
                f"it uses secret {sealed.name}, and this node has no sealing key ({KEY_SOURCES})"
            )
        try:
            return self.key.open(sealed, holder=holder)
        except UnsealError as exc:
            raise RuntimeStartError(str(exc)) from exc

    def _check_tmpfs(self) -> None:
        """Once per node: the mounts do not change under a running agent."""
        if self.on_tmpfs:
            return
        with open("/proc/self/mounts") as mounts:
            kind = filesystem_of(str(self.root.resolve()), mounts.read())
        if kind != "tmpfs":
            raise RuntimeStartError(
                f"secrets go on a tmpfs, and {self.root} is on {kind or 'an unknown filesystem'} "
                "(SHOAL_NODE_SECRETS_DIR)"
            )
        self.on_tmpfs = True


def _check_own(folder: Path) -> None:
    """A folder of this process's user that no one else may write, and no symlink: /dev/shm
    is every local user's, who could make the folder first, or a link in its place."""
    info = os.lstat(folder)
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or mode & 0o022:
        raise RuntimeStartError(
            f"{folder} is not the node-agent's own folder (uid {info.st_uid}, mode "
            f"{mode:o}{', a link' if stat.S_ISLNK(info.st_mode) else ''}); remove it"
        )


def _write_private(path: Path, data: bytes, uid: int, gid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as out:
        os.fchown(fd, uid, gid)
        out.write(data)


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    path.chmod(mode)
