"""python -m cnnx demo, end to end, and the PNGs it writes (Agg, no display)."""
import subprocess
import sys

import numpy as np
import pytest

from cnnx import demo
from cnnx.__main__ import main


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_drawn_shapes_are_deterministic_and_balanced():
    x1, y1 = demo.draw_shapes(200, seed=5)
    x2, y2 = demo.draw_shapes(200, seed=5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (200, 64, 64, 3) and x1.dtype == np.float32
    assert 0 <= x1.min() and x1.max() <= 1 and 60 < y1.sum() < 140


@pytest.mark.slow
def test_demo_trains_saves_reloads_predicts_and_draws(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    accuracy = demo.run(epochs=3, out=str(tmp_path))
    out = capsys.readouterr().out
    assert "Total params: 813,217" in out and "Epoch 3/3" in out
    assert "Test accuracy:" in out and "reloaded; one test image" in out
    assert accuracy >= 0.9
    assert (tmp_path / "course_cnn.keras").exists()
    w, h = _png_size(tmp_path / "filters.png")
    assert w > 200 and h > 100
    assert _png_size(tmp_path / "feature_maps.png")[0] > 200


@pytest.mark.slow
def test_demo_on_a_folder_of_classes(tmp_path, capsys, shared_data):
    folder = shared_data / "catsdogs" / "test_set"
    pytest.importorskip("PIL")
    demo.run(data=str(folder), epochs=1, out=str(tmp_path))
    out = capsys.readouterr().out
    assert "Found 128 images belonging to 2 classes." in out  # 80% of each class
    assert "Test accuracy:" in out


def test_command_line():
    assert main([]) == 2 and main(["config"]) == 0 and main(["nope"]) == 2
    done = subprocess.run([sys.executable, "-m", "cnnx", "demo", "--data", "/no/such"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "neither a known data set nor a folder" in done.stderr


def test_demo_offline_says_what_to_do_without_a_traceback(tmp_path, monkeypatch, capsys):
    import socket

    from cnnx import demo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CNNX_HOME", str(tmp_path))
    monkeypatch.setenv("CNNX_DATASETS_MIRROR", f"http://127.0.0.1:{port}")
    assert demo.main(["--data", "fashion_mnist", "--epochs", "1",
                      "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnx demo: Could not download") and "put the file at" in err
    assert "Traceback" not in err


def test_dir_of_cnnx_lists_its_api_only():
    import cnnx
    names = dir(cnnx)
    assert "Sequential" in names and "layers" in names and "__version__" in names
    assert not [n for n in names if n.startswith("_") and n != "__version__"]
    assert "importlib" not in names
