"""Local function images with no registry (the demo function's and the tests'): a busybox
rootfs imported as shoal-test/base:1, then one small image per behaviour (deploy/images)
built FROM it. Rebuilt only when those files change."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

from services.local.paths import REPO_ROOT

HERE = REPO_ROOT / "deploy" / "images"
BUSYBOX = Path("/bin/busybox")
BASE = "shoal-test/base:1"
IMAGES = ("hello", "cpu", "sleep", "crash", "never-ready", "memhog", "flood", "fail", "slow")
APPLETS: tuple[str, ...] = (
    "sh",
    "httpd",
    "sleep",
    "head",
    "tr",
    "cat",
    "echo",
    "printf",
    "ls",
    "ps",
    "kill",
)
APPLETS += ("mkdir", "rmdir")
LABEL = "dev.shoal.test-image-hash"


def image(name: str) -> str:
    return f"shoal-test/{name}:1"


def source_hash() -> str:
    digest = hashlib.sha256(BUSYBOX.read_bytes() if BUSYBOX.exists() else b"")
    digest.update(" ".join(APPLETS).encode())
    for path in sorted(HERE.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(HERE)).encode())
            digest.update(path.read_bytes())
            digest.update(str(os.stat(path).st_mode & 0o111).encode())
    return digest.hexdigest()[:16]


def base_rootfs() -> bytes:
    """A tar of a minimal root: /bin/busybox, applet links, /www, /tmp."""
    if not BUSYBOX.exists():
        raise FileNotFoundError("/bin/busybox is missing: apt-get install busybox-static")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "tmp", "www", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buffer.getvalue()


def _current(client: Any, tag: str, wanted: str) -> bool:
    try:
        found = client.images.get(tag)
    except Exception:
        return False
    return bool((found.labels or {}).get(LABEL) == wanted)


def ensure_test_images(client: Any) -> dict[str, str]:
    """Build what is missing or stale; returns behaviour -> image tag."""
    wanted = source_hash()
    if not all(_current(client, image(name), wanted) for name in IMAGES):
        client.api.import_image_from_data(base_rootfs(), repository="shoal-test/base", tag="1")
        for name in IMAGES:
            client.images.build(
                path=str(HERE / name), tag=image(name), rm=True, labels={LABEL: wanted}
            )
    return {name: image(name) for name in IMAGES}


if __name__ == "__main__":
    import docker

    for name, tag in ensure_test_images(docker.from_env()).items():
        print(f"{name:<12} {tag}")
