"""Every course example runs (in its --quick mode), and the pictures it draws are PNGs."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("0*.py"))
EXPECTED = {
    "01_convolution.py": ["[[0 1 0 0 0]", "flattened: [1 1 0 4 2 1 0 2 1]"],
    "02_filters.py": ["edge_detect", "sobel_y"],
    "03_relu.py": ["after ReLU: range [0.0"],
    "04_pooling_flattening.py": ["flattened, row by row: [1 1 0 4 2 1 0 2 1]"],
    "05_fully_connected.py": ["test accuracy of the fully connected network"],
    "06_softmax_cross_entropy.py": ["[0.95 0.05]", "0.25            0.38",
                                    "0.71            1.06", "0.33 (1/3)"],
    "07_lenet_mnist.py": ["LeNet-5 test accuracy"],
    "08_cats_vs_dogs.py": ["Found 320 images belonging to 2 classes.", "P(dog) ="],
}
PICTURES = {"01_convolution.py": ["convolution.png"], "02_filters.py": ["filters.png"],
            "03_relu.py": ["relu.png"], "04_pooling_flattening.py": ["pooling_flattening.png"],
            "05_fully_connected.py": ["fully_connected_history.png"],
            "06_softmax_cross_entropy.py": ["errors.png"],
            "07_lenet_mnist.py": ["lenet_history.png", "lenet_filters.png",
                                  "lenet_feature_maps.png"],
            "08_cats_vs_dogs.py": ["cat_feature_maps.png", "history.png"]}


def test_every_example_draws_pictures():
    assert sorted(PICTURES) == sorted(EXPECTED)


def test_every_example_is_listed():
    assert [p.name for p in EXAMPLES] == sorted(EXPECTED)


# These read the course's real data (MNIST, the cats-and-dogs photos).
NEEDS_DATA = {"07_lenet_mnist.py", "08_cats_vs_dogs.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", [
    pytest.param(p, marks=[pytest.mark.data] if p.name in NEEDS_DATA else [], id=p.name)
    for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    pytest.importorskip("PIL")
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in EXPECTED[script.name]:
        assert text in done.stdout, f"{text!r} not in the output of {script.name}"
    pytest.importorskip("matplotlib")
    from PIL import Image
    for name in PICTURES.get(script.name, []):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] >= 300 and img.size[1] >= 100
