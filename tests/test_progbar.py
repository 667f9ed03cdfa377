"""The progress bar as a terminal shows it: the byte stream is rendered (carriage return,
newline, overwriting) and the screen's lines are compared with the logged values."""
import io
import sys

import numpy as np

from cnnx.progbar import Progbar, format_value

from helpers import data, small_model


class Terminal(io.StringIO):
    def isatty(self):
        return True


def screen(text):
    """The lines a terminal shows after receiving text (\\r returns to column 0, \\n
    starts a new line, other characters overwrite)."""
    lines, line, col = [], [], 0
    for ch in text:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    if line:
        lines.append("".join(line).rstrip())
    return lines


def test_a_shorter_redraw_leaves_no_tail_of_the_longer_one():
    out = Terminal()
    bar = Progbar(12, stream=out)
    bar.update(1, {"loss": 2.330213, "accuracy": 0.08})
    bar.update(12, {"loss": 2.3302}, finalize=True)
    (last,) = screen(out.getvalue())
    assert last.endswith("- loss: 2.3302"), last
    assert " 1/12" in out.getvalue()   # the counter is padded to the total's width


def test_metric_precision_is_keras():
    assert format_value(2.3302135) == "2.3302"
    assert format_value(0.0004567) == "4.5670e-04"


def test_fit_evaluate_predict_as_a_terminal_shows_them(monkeypatch):
    model = small_model(seed=2)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y, _ = data(64)
    term = Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=1)
    loss, acc = model.evaluate(x, y, batch_size=4, verbose=1)
    model.predict(x, batch_size=4, verbose=1)
    monkeypatch.undo()
    lines = [line for line in screen(term.getvalue()) if line]
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    fit_line = lines[3]
    assert fit_line.startswith("16/16 ")
    assert fit_line.endswith(f"accuracy: {format_value(history.history['accuracy'][-1])} - "
                             f"loss: {format_value(history.history['loss'][-1])}"), fit_line
    eval_line = lines[4]
    assert eval_line.endswith(f"accuracy: {format_value(acc)} - loss: "
                              f"{format_value(loss)}"), eval_line
    assert lines[5].startswith("16/16 ") and lines[5].endswith("/step"), lines[5]
    assert len(lines) == 6


def test_logs_get_one_line_per_epoch(capsys):
    model = small_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y, _ = data(16)
    model.fit(x, y, batch_size=4, epochs=2, verbose=1)   # captured: not a terminal
    out = capsys.readouterr().out
    assert "\r" not in out and out.count("/step") == 2
    np.testing.assert_equal(len(out.splitlines()), 4)
