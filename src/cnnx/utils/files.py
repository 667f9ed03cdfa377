"""get_file: Keras's download helper, on cnnx's verified, bounded, atomic downloads."""
import os
import tarfile
import urllib.parse
import zipfile
from pathlib import Path

__all__ = ["get_file"]

_HASHES = {"md5": 32, "sha256": 64}


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Download `origin` into cache_dir/cache_subdir (default ~/.keras's place for
    cnnx: $CNNX_HOME, else ~/.cnnx/datasets) as `fname`, unless it is there already
    and matches file_hash (md5 or sha256, by its length or hash_algorithm). Returns the
    file's path, or with extract=True the folder its tar or zip archive was unpacked
    into (no member may land outside it).

    The download is bounded in time and size, written to a temporary file and renamed
    into place, retried once when its checksum fails; offline, the error says where to
    put the file.

    A file:// origin works too, which shows it without a network:

    >>> import hashlib, os
    >>> with open("notes.txt", "w") as f:
    ...     size = f.write("hello")
    >>> digest = hashlib.sha256(b"hello").hexdigest()
    >>> origin = "file://" + os.path.abspath("notes.txt")
    >>> path = cnnx.utils.get_file("copy.txt", origin, file_hash=digest,
    ...                            cache_dir=os.path.abspath("cache"))
    Downloading file://...notes.txt
    >>> open(path).read(), os.path.relpath(path)
    ('hello', 'cache/datasets/copy.txt')
    """
    from ..datasets import _download
    if origin is None:
        raise ValueError("get_file: `origin` (the URL to download) is required")
    if not isinstance(origin, str) or not urllib.parse.urlparse(origin).scheme:
        raise ValueError(f"get_file: `origin` must be a URL, received {origin!r}")
    fname = fname or os.path.basename(urllib.parse.urlparse(origin).path)
    if not fname or os.path.basename(fname) != fname or fname in (".", ".."):
        raise ValueError(f"get_file: `fname` must be a file name (no folders), received "
                         f"{fname!r}")
    if untar:
        extract = True
    file_hash = file_hash or md5_hash
    algorithm = None
    if file_hash is not None:
        file_hash = str(file_hash).lower()
        algorithm = hash_algorithm if hash_algorithm in _HASHES else (
            "sha256" if len(file_hash) == 64 else "md5")
        if len(file_hash) != _HASHES[algorithm] or any(c not in "0123456789abcdef"
                                                       for c in file_hash):
            raise ValueError(f"get_file: `file_hash` must be a hex {algorithm} digest, "
                             f"received {file_hash!r}")
    root = Path(cache_dir).expanduser() if cache_dir else _download.cache_dir().parent
    folder = root / cache_subdir
    folder.mkdir(parents=True, exist_ok=True)
    remote = _download.RemoteFile(
        name=fname, origin="", source=origin,
        md5=file_hash if algorithm == "md5" else None,
        sha256=file_hash if algorithm == "sha256" else None)
    path = _download.fetch(remote, folder=folder, force=force_download)
    if not extract:
        return str(path)
    return str(_extract(path, archive_format))


def _extract(path, archive_format):
    """Unpack a tar or zip archive beside itself, into a folder named after it; a member
    whose path leaves that folder (absolute, or through ..) or that is a link or a
    device is refused."""
    target = path.parent / (path.name.split(".")[0] + "_extracted")
    formats = ("tar", "zip") if archive_format in ("auto", None) else (archive_format,)
    if "tar" in formats and tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"get_file: {path} holds {member.name!r}, which is not "
                                     f"a plain file or folder; not extracted")
                _inside(target, member.name, path)
            try:
                archive.extractall(target, filter="data")
            except TypeError:   # a Python without extraction filters: checked above
                archive.extractall(target)
        return target
    if "zip" in formats and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                _inside(target, name, path)
            archive.extractall(target)
        return target
    raise ValueError(f"get_file: {path} is not a {' or '.join(formats)} archive; cannot "
                     f"extract it")


def _inside(folder, name, archive):
    resolved = (folder / name).resolve()
    if not str(resolved).startswith(str(folder.resolve()) + os.sep) \
            and resolved != folder.resolve():
        raise ValueError(f"get_file: {archive} holds {name!r}, which would land outside "
                         f"{folder}; not extracted")
