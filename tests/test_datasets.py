"""cnnx.datasets on the real files in ../shared/data, served by a local HTTP server on
127.0.0.1 to exercise the download path, corruption and truncation included."""
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from cnnx import datasets
from cnnx.datasets import _download, _formats


class _Server:
    """Serves files from a dict {url path: bytes or callable(count) -> bytes}."""

    def __init__(self):
        self.routes, self.hits = {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = server.routes.get(self.path)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if callable(body):
                    body = body(server.hits[self.path])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    s = _Server()
    monkeypatch.setenv("CNNX_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNX_DATASETS_MIRROR", s.url + "/files")
    yield s
    s.close()


@pytest.fixture
def fashion_files(shared_data):
    folder = shared_data / "fashion-mnist"
    return {f"/files/{p.name}": p.read_bytes() for p in folder.glob("*.gz")}


def test_fashion_mnist_downloads_verifies_and_caches_the_real_files(server, capsys,
                                                                   fashion_files):
    server.routes.update(fashion_files)
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert round(float(x_train.mean()), 2) == 72.94 and round(float(x_test.mean()), 2) == 73.15
    assert sum(server.hits.values()) == 4
    datasets.fashion_mnist.load_data()  # from the cache now
    assert sum(server.hits.values()) == 4
    # These copies were recompressed: accepted through the MD5 of their content.
    assert "Downloading" in capsys.readouterr().out


def test_corrupt_download_is_removed_and_retried_once(server, fashion_files):
    files = fashion_files
    good = files["/files/t10k-labels-idx1-ubyte.gz"]
    server.routes.update(files)
    server.routes["/files/t10k-labels-idx1-ubyte.gz"] = (
        lambda count: good[:-7] + b"garbage" if count == 1 else good)
    (_, _), (_, y_test) = datasets.fashion_mnist.load_data()
    assert server.hits["/files/t10k-labels-idx1-ubyte.gz"] == 2 and len(y_test) == 10000
    leftovers = [p.name for p in Path(os.environ["CNNX_HOME"]).rglob("*.part")]
    assert leftovers == []


def test_truncated_download_fails_cleanly_after_one_retry(server, fashion_files):
    files = fashion_files
    server.routes.update(files)
    truncated = files["/files/train-labels-idx1-ubyte.gz"][:1000]
    server.routes["/files/train-labels-idx1-ubyte.gz"] = truncated
    with pytest.raises(OSError, match="failed its checksum twice"):
        datasets.fashion_mnist.load_data()
    assert server.hits["/files/train-labels-idx1-ubyte.gz"] == 2
    cache = Path(os.environ["CNNX_HOME"]) / "fashion-mnist"
    assert not (cache / "train-labels-idx1-ubyte.gz").exists()
    assert not list(cache.glob("*.part"))


def test_a_corrupt_cached_file_is_replaced(server, fashion_files):
    files = fashion_files
    server.routes.update(files)
    cache = Path(os.environ["CNNX_HOME"]) / "fashion-mnist"
    cache.mkdir(parents=True)
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    datasets.fashion_mnist.load_data()
    assert server.hits["/files/t10k-labels-idx1-ubyte.gz"] == 1


def test_without_network_the_error_says_which_file_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNX_HOME", str(tmp_path))
    monkeypatch.setenv("CNNX_DATASETS_MIRROR", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(OSError, match=r"put the file at .*fashion-mnist.*train-labels-idx1-"
                                      r"ubyte\.gz \(its md5 25c81989"):
        datasets.fashion_mnist.load_data()


def test_mnist_npz_and_idx_formats(server, monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
                  y_train=np.arange(6, dtype=np.uint8),
                  x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
                  y_test=np.arange(2, dtype=np.uint8))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    server.routes["/files/mnist.npz"] = blob
    # The real file's SHA-256 is pinned; for this stand-in, pin the stand-in's.
    monkeypatch.setattr(datasets.mnist, "_NPZ", _download.RemoteFile(
        "mnist.npz", "unused", sha256=hashlib.sha256(blob).hexdigest()))
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    assert y_test.tolist() == [0, 1]
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x01" * 10)
    with pytest.raises(ValueError, match="header promises"):
        _formats.read_idx(bad)


def test_mnist_idx_reader_on_the_real_files(shared_data):
    folder = shared_data / "mnist"
    images = _formats.read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = _formats.read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and round(float(images.mean()), 2) == 33.79
    assert np.bincount(labels)[:3].tolist() == [980, 1135, 1032]
    for f in datasets.mnist._IDX[2:]:
        assert _download.verify(folder / f.name, f)  # byte-identical originals


def _cifar_tarball(batches):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    return pickle.dumps({b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"filenames": [b"f"] * n}, protocol=2)


def test_cifar10_reads_the_python_tarball_with_a_restricted_unpickler(server, monkeypatch):
    batches = {f"data_batch_{i}": _batch(4, i) for i in range(1, 6)}
    batches["test_batch"] = _batch(3, 9)
    blob = _cifar_tarball(batches)
    server.routes["/files/cifar-10-python.tar.gz"] = blob
    monkeypatch.setattr(datasets.cifar10, "_ARCHIVE", _download.RemoteFile(
        "cifar-10-python.tar.gz", "unused", md5=hashlib.md5(blob).hexdigest()))
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and y_train.shape == (20, 1)
    assert x_test.shape == (3, 32, 32, 3) and y_test.shape == (3, 1)
    first = pickle.loads(batches["data_batch_1"], encoding="bytes")[b"data"][0]
    np.testing.assert_array_equal(x_train[0, :, :, 0].reshape(-1), first[:1024])  # red plane

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    batches["test_batch"] = pickle.dumps({b"data": Evil()})
    blob = _cifar_tarball(batches)
    server.routes["/files/cifar-10-python.tar.gz"] = blob
    (Path(os.environ["CNNX_HOME"]) / "cifar-10-python.tar.gz").unlink()
    monkeypatch.setattr(datasets.cifar10, "_ARCHIVE", _download.RemoteFile(
        "cifar-10-python.tar.gz", "unused", md5=hashlib.md5(blob).hexdigest()))
    with pytest.raises(pickle.UnpicklingError, match="refused to unpickle posix.system"):
        datasets.cifar10.load_data()
