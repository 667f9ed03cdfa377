"""Verified, atomic, offline-friendly downloads into cnnx's dataset cache.

The cache is $CNNX_HOME (default ~/.cnnx/datasets). $CNNX_DATASETS_MIRROR, when set,
replaces each file's canonical base URL (a proxy, an internal mirror, or a test server).
Every file is checked against a published checksum before it is used: the MD5 or SHA-256
of the file as distributed or, for gzip files, the MD5 of the decompressed content (so a
recompressed copy of the same data is accepted). A download goes to a temporary file
beside its target and is renamed into place only once it verifies; a corrupt or partial
download is removed and retried once.
"""
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RemoteFile", "cache_dir", "fetch"]

_TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    name: str                 # file name in the cache and at the origin
    origin: str               # canonical base URL (ending in /)
    md5: str = None           # of the file as distributed
    sha256: str = None        # of the file as distributed
    raw_md5: str = None       # of the decompressed content, for .gz files
    extra: dict = field(default_factory=dict)

    def url(self):
        base = os.environ.get("CNNX_DATASETS_MIRROR") or self.origin
        return base.rstrip("/") + "/" + self.name

    def checksum_text(self):
        return ", ".join(f"{k} {v}" for k, v in (("sha256", self.sha256), ("md5", self.md5),
                                                   ("md5 of the content", self.raw_md5)) if v)


def cache_dir(subdir=""):
    root = Path(os.environ.get("CNNX_HOME") or Path.home() / ".cnnx" / "datasets")
    return root / subdir


def _digest(path, algorithm, decompress=False):
    h = hashlib.new(algorithm)
    opener = gzip.open if decompress else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path, remote):
    """Whether the file at `path` is the published file (or the same data recompressed)."""
    try:
        if remote.sha256 and _digest(path, "sha256") == remote.sha256:
            return True
        if remote.md5 and _digest(path, "md5") == remote.md5:
            return True
        if remote.raw_md5 and _digest(path, "md5", decompress=True) == remote.raw_md5:
            return True
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return False  # a truncated or corrupt archive
    return False


def _download(url, target):
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as r:
            while True:
                block = r.read(1 << 20)
                if not block:
                    break
                out.write(block)
        return Path(tmp)
    except BaseException:
        os.unlink(tmp)
        raise


def fetch(remote, subdir="", verbose=True):
    """The verified local path of `remote`: from the cache, else downloaded."""
    folder = cache_dir(subdir)
    target = folder / remote.name
    if target.exists():
        if verify(target, remote):
            return target
        if verbose:
            print(f"{target} does not match its published checksum; downloading it again")
        target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    url = remote.url()
    for attempt in (1, 2):
        if verbose:
            print(f"Downloading {url}")
        try:
            tmp = _download(url, target)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise OSError(
                f"Could not download {remote.name} from {url} ({e}). Without a network, "
                f"put the file at {target} (its {remote.checksum_text()}), or set "
                f"CNNX_HOME to a folder that holds it.") from None
        if verify(tmp, remote):
            os.replace(tmp, target)
            return target
        tmp.unlink()
        if verbose and attempt == 1:
            print(f"The download of {remote.name} is corrupt or incomplete; retrying once")
    raise OSError(f"{remote.name} from {url} failed its checksum twice "
                  f"(expected {remote.checksum_text()}); the file was removed")
