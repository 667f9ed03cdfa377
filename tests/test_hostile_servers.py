"""Downloads against servers that misbehave, on 127.0.0.1: each ends in bounded time
and space with an error naming the URL and the file, and leaves no partial file."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from cnnx.datasets import _download


class RawServer:
    """A TCP server on 127.0.0.1 whose answer depends on the request path's first part:
    /trickle/ (one byte per 0.1 s), /endless/ (data without end), /huge/ (announces a
    terabyte), /garbage/ (no HTTP at all). Every loop is bounded in bytes and time."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            conn.settimeout(30)
            try:
                request = conn.recv(4096).decode("latin-1")
                kind = request.split(" ")[1].split("/")[1]
                if kind == "garbage":
                    conn.sendall(b"HELLO THERE\r\n\r\n")
                elif kind == "huge":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
                elif kind == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    for _ in range(600):         # at most a minute
                        conn.sendall(b"x")
                        time.sleep(0.1)
                elif kind == "endless":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                    chunk = b"y" * 65536
                    for _ in range(1600):        # at most 100 MiB
                        conn.sendall(chunk)
            except OSError:
                pass   # the client hung up: what these tests want

    def close(self):
        self.closed = True
        self.sock.close()


@pytest.fixture
def raw(tmp_path, monkeypatch):
    server = RawServer()
    monkeypatch.setenv("CNNX_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNX_DATASETS_MIRROR", raising=False)
    yield server
    server.close()


def _remote(server, kind, size=1000):
    return _download.RemoteFile("data.gz", f"{server.url}/{kind}/", sha256="0" * 64,
                                size=size)


def _no_partial_files(tmp_path):
    return [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("kind,deadline,match", [
    ("trickle", "1", "took longer than its deadline of 1 s"),
    ("endless", None, "passed 1050576 bytes, more than data.gz can be"),
    ("huge", None, "announces 1000000000000 bytes, more than the 1050576"),
    ("garbage", None, "Could not download data.gz from http://127.0.0.1"),
])
def test_misbehaving_servers_fail_in_bounded_time(raw, tmp_path, monkeypatch, kind,
                                                  deadline, match):
    if deadline:
        monkeypatch.setenv("CNNX_DOWNLOAD_DEADLINE", deadline)
    remote = _remote(raw, kind)
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        _download.fetch(remote, verbose=False)
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert match in message and f"{raw.url}/{kind}/data.gz" in message
    assert _no_partial_files(tmp_path)


def test_sigterm_during_a_download_leaves_no_partial_file(raw, tmp_path):
    cache = tmp_path / "cache"
    code = textwrap.dedent(f"""
        from cnnx.datasets import _download
        remote = _download.RemoteFile("data.gz", "{raw.url}/trickle/", sha256="0" * 64,
                                      size=1000)
        _download.fetch(remote, verbose=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                             env={**os.environ, "CNNX_HOME": str(cache)})
    deadline = time.monotonic() + 30
    while not list(cache.rglob("*.part")):
        assert time.monotonic() < deadline and child.poll() is None, "no download started"
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGTERM
    assert not list(cache.rglob("*.part"))


def test_sigterm_handler_cleans_up_then_delivers_the_signal():
    import threading

    from cnnx.datasets._download import _cleanup_on_sigterm, _Terminated
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        cleaned = []
        with pytest.raises(_Terminated):
            try:
                with _cleanup_on_sigterm():
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(1)   # the handler raises before this ends
            finally:
                cleaned.append(True)
        assert cleaned == [True] and received == [signal.SIGTERM]   # delivered again
        # Outside the main thread signal handlers cannot be set: a plain pass-through.
        done = []
        thread = threading.Thread(target=lambda: done.append(
            _cleanup_on_sigterm().__enter__() is None))
        thread.start()
        thread.join()
        assert done == [True]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_file_that_matches_no_checksum_is_not_verified(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(b"not the data")
    remote = _download.RemoteFile("f.gz", "http://127.0.0.1:9/", sha256="0" * 64, md5="0" * 32)
    assert _download.verify(path, remote) is False


def test_outside_the_main_thread_sigterm_is_left_alone():
    import threading

    from cnnx.datasets._download import _cleanup_on_sigterm
    ran = []

    def work():
        with _cleanup_on_sigterm():
            ran.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert ran == [before]
