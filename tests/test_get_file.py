"""utils.get_file against a local HTTP server: download, cache, checksums, extraction
(refusing members that would land outside their folder), and the offline error."""
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile

import pytest

import cnnx


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # noqa: ARG002 (quiet)
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()


def test_download_cache_and_checksums(server, tmp_path):
    root, url, requests = server
    (root / "data.bin").write_bytes(b"cnnx" * 1000)
    md5 = hashlib.md5(b"cnnx" * 1000).hexdigest()
    sha = hashlib.sha256(b"cnnx" * 1000).hexdigest()
    cache = tmp_path / "cache"
    path = cnnx.utils.get_file("d.bin", f"{url}/data.bin", file_hash=sha, cache_dir=cache)
    assert path == str(cache / "datasets" / "d.bin")
    assert open(path, "rb").read() == b"cnnx" * 1000
    n = len(requests)
    assert cnnx.utils.get_file("d.bin", f"{url}/data.bin", md5_hash=md5,
                               cache_dir=cache) == path
    assert len(requests) == n                         # from the cache
    cnnx.utils.get_file("d.bin", f"{url}/data.bin", cache_dir=cache, force_download=True)
    assert len(requests) == n + 1
    with pytest.raises(OSError, match="failed its checksum twice"):
        cnnx.utils.get_file("bad.bin", f"{url}/data.bin", file_hash="0" * 32,
                            cache_dir=cache)
    assert not (cache / "datasets" / "bad.bin").exists()
    assert [p.name for p in (cache / "datasets").iterdir()] == ["d.bin"]   # no leftovers
    with pytest.raises(ValueError, match="`file_hash` must be a hex md5 digest"):
        cnnx.utils.get_file("x", f"{url}/data.bin", file_hash="xyz" * 10 + "ab",
                            cache_dir=cache)
    with pytest.raises(ValueError, match="must be a file name"):
        cnnx.utils.get_file("../x", f"{url}/data.bin", cache_dir=cache)


def test_extract_tar_and_zip_and_refuse_escapes(server, tmp_path):
    root, url, _ = server
    with tarfile.open(root / "good.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("folder/a.txt")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    with zipfile.ZipFile(root / "good.zip", "w") as z:
        z.writestr("b.txt", "zip!")
    with tarfile.open(root / "evil.tar", "w") as t:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    cache = tmp_path / "cache"
    folder = cnnx.utils.get_file("good.tar.gz", f"{url}/good.tar.gz", extract=True,
                                 cache_dir=cache)
    assert open(f"{folder}/folder/a.txt").read() == "hello"
    folder = cnnx.utils.get_file(origin=f"{url}/good.zip", untar=True, cache_dir=cache)
    assert open(f"{folder}/b.txt").read() == "zip!"
    with pytest.raises(ValueError, match="would land outside"):
        cnnx.utils.get_file("evil.tar", f"{url}/evil.tar", extract=True, cache_dir=cache)
    assert not (tmp_path / "escaped.txt").exists() and not (cache / "escaped.txt").exists()


def test_offline_error_says_where_to_put_the_file(tmp_path):
    with socket.socket() as s:        # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError, match=r"Could not download f.bin .* put the file at .*f\.bin"):
        cnnx.utils.get_file("f.bin", f"http://127.0.0.1:{port}/f.bin", cache_dir=tmp_path)
