"""Verified, atomic, offline-friendly downloads into cnnx's dataset cache.

The cache is $CNNX_HOME (default ~/.cnnx/datasets). $CNNX_DATASETS_MIRROR, when set,
replaces each file's canonical base URL (a proxy, an internal mirror, or a test server).
Every file is checked against a published checksum before it is used: the MD5 or SHA-256
of the file as distributed or, for gzip files, the MD5 of the decompressed content (so a
recompressed copy of the same data is accepted). A download goes to a temporary file
beside its target and is renamed into place only once it verifies; a corrupt or partial
download is removed and retried once.

A download is bounded: each read waits at most 60 s, the whole file has a deadline
(10 minutes plus one second per 100 kB expected; $CNNX_DOWNLOAD_DEADLINE overrides it,
in seconds), and it may not grow past twice its expected size plus 1 MiB. A server that
trickles, streams without end or answers malformed HTTP gets an error naming the URL and
the file, and the partial file is removed, also when the process is sent SIGTERM.
"""
import contextlib
import gzip
import hashlib
import http.client
import os
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RemoteFile", "cache_dir", "fetch"]

_TIMEOUT_S = 60
_DEFAULT_SIZE = 64 * 2 ** 20   # the expected size of a file whose size is not recorded


@dataclass(frozen=True)
class RemoteFile:
    name: str                 # file name in the cache and at the origin
    origin: str               # canonical base URL (ending in /)
    md5: str = None           # of the file as distributed
    sha256: str = None        # of the file as distributed
    raw_md5: str = None       # of the decompressed content, for .gz files
    size: int = None          # bytes as distributed
    extra: dict = field(default_factory=dict)
    source: str = None        # a full URL to fetch instead of origin + name (get_file)

    def max_bytes(self):
        """The most a download may write: a recompressed copy may be somewhat larger."""
        return 2 * (self.size or _DEFAULT_SIZE) + 2 ** 20

    def deadline_s(self):
        env = os.environ.get("CNNX_DOWNLOAD_DEADLINE")
        if env:
            return float(env)
        return 600 + (self.size or _DEFAULT_SIZE) / 100e3

    def url(self):
        if self.source:
            return self.source
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
    """Whether the file at `path` is the published file (or the same data recompressed).
    A file with no checksum recorded (get_file without file_hash) passes as it is."""
    if not (remote.sha256 or remote.md5 or remote.raw_md5):
        return True
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


class _Terminated(BaseException):
    """SIGTERM during a download, raised so that the partial file is removed."""


@contextlib.contextmanager
def _cleanup_on_sigterm():
    """In the main thread, SIGTERM during the block raises _Terminated (so that `finally`
    clauses run), and is delivered again, with the previous handler, once they have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 (signal handler signature)
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _download(url, target, remote):
    with _cleanup_on_sigterm():   # from before the partial file exists
        return _download_to_part(url, target, remote)


def _download_to_part(url, target, remote):
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    cap, deadline = remote.max_bytes(), time.monotonic() + remote.deadline_s()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as r:
            declared = r.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise OSError(f"the server announces {declared} bytes, more than the "
                              f"{cap} that {remote.name} can be")
            written = 0
            while True:
                block = r.read1(1 << 20)   # what has arrived: a trickle cannot hold it
                if not block:
                    break
                written += len(block)
                if written > cap:
                    raise OSError(f"the download passed {cap} bytes, more than "
                                  f"{remote.name} can be")
                if time.monotonic() > deadline:
                    raise OSError(f"the download took longer than its deadline of "
                                  f"{remote.deadline_s():.0f} s "
                                  f"(CNNX_DOWNLOAD_DEADLINE sets it)")
                out.write(block)
        return Path(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fetch(remote, subdir="", verbose=True, folder=None, force=False):
    """The verified local path of `remote`: from the cache (or `folder`), else
    downloaded (always, with force)."""
    folder = cache_dir(subdir) if folder is None else Path(folder)
    target = folder / remote.name
    if target.exists() and not force:
        if verify(target, remote):
            return target
        if verbose:
            print(f"{target} does not match its published checksum; downloading it again")
        target.unlink()
    elif target.exists():
        target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    url = remote.url()
    for attempt in (1, 2):
        if verbose:
            print(f"Downloading {url}")
        try:
            tmp = _download(url, target, remote)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            checksum = f" (its {remote.checksum_text()})" if remote.checksum_text() else ""
            raise OSError(
                f"Could not download {remote.name} from {url} ({e}). Without a network, "
                f"put the file at {target}{checksum}, or set CNNX_HOME to a folder that "
                f"holds it.") from None
        if verify(tmp, remote):
            os.replace(tmp, target)
            return target
        tmp.unlink()
        if verbose and attempt == 1:
            print(f"The download of {remote.name} is corrupt or incomplete; retrying once")
    raise OSError(f"{remote.name} from {url} failed its checksum twice "
                  f"(expected {remote.checksum_text()}); the file was removed")
