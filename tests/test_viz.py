"""The pictures: history curves a reader can read, filters and feature maps on one shared
scale with a colour bar, the input beside its feature maps."""
import numpy as np
import pytest

import cnnx
from cnnx import layers as L

pytest.importorskip("matplotlib")


@pytest.fixture
def trained():
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([cnnx.Input((10, 10, 1)), L.Conv2D(4, 3, activation="relu"),
                             L.Flatten(), L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((20, 10, 10, 1)).astype(np.float32)
    history = model.fit(x, cnnx.utils.to_categorical(np.arange(20) % 2, 2), epochs=3,
                        verbose=0, validation_split=0.2)
    return model, x, history


def test_history_curves_have_readable_axes(trained, tmp_path):
    _, _, history = trained
    fig = cnnx.viz.plot_history(history, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["accuracy", "loss"]
    for ax in panels:
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) >= 2, ax.get_title()        # values can be read off
        assert len(ax.get_lines()) == 2                   # training and validation


def test_filters_and_feature_maps_share_one_scale_with_a_colour_bar(trained, tmp_path):
    model, x, _ = trained
    conv = model.layers[0]
    fig = cnnx.viz.plot_filters(conv, tmp_path / "f.png")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 4 and len({im.get_clim() for im in images}) == 1
    assert [im.axes.get_title() for im in images] == [f"filter {i}" for i in range(4)]
    low, high = images[0].get_clim()
    assert low == -high                                  # diverging: 0 in the middle
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    fig = cnnx.viz.plot_feature_maps(model, x[0], conv, tmp_path / "m.png")
    tiles = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in tiles] == ["input"] + [f"channel {i}" for i in range(4)]
    assert fig._suptitle.get_text().startswith(conv.name)   # the layer, by name
    np.testing.assert_allclose(tiles[0].get_images()[0].get_array(), x[0, :, :, 0])
    clims = {ax.get_images()[0].get_clim() for ax in tiles[1:]}
    assert len(tiles) == 5 and len(clims) == 1
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
