"""The README's main job: both halves of the demo train to a good accuracy."""

from __future__ import annotations

import io
import re

import pytest

from optaxish.demo.__main__ import main
from optaxish.demo._data import spirals
from optaxish.demo._facade import train_facade
from optaxish.demo._functional import train_functional
from optaxish.demo._progress import Progress


@pytest.fixture(scope="module")
def data():
    return spirals(n_per_class=200)


def test_facade_training_learns_the_spirals_in_float16(data):
    x, y = data
    # Growing the scale every 5 finite steps soon overflows float16 gradients:
    # the scale then rises and falls, and the overflowing steps are skipped.
    results = train_facade(x, y, steps=300, growth_steps=5, stream=io.StringIO())
    assert results["accuracy"] > 0.9
    assert results["loss"] < 0.35
    assert results["steps_per_second"] > 0
    assert results["traces"] == 1  # minimize compiled its step once
    assert results["loss_scale"] > 2.0**15
    assert 0 < results["skipped"] < 150


def test_functional_training_learns_the_spirals(data):
    x, y = data
    results = train_functional(x, y, steps=600, stream=io.StringIO())
    assert results["accuracy"] > 0.9
    assert results["loss"] < 0.35
    assert results["steps_per_second"] > 0
    assert results["traces"] == 1


def test_main_prints_both_result_lines_and_progress(capsys):
    main(["--steps", "40"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("dataset: 1200 points")
    facade = [line for line in lines if line.startswith("facade")]
    functional = [line for line in lines if line.startswith("functional")]
    assert len(facade) == 1 and len(functional) == 1
    for line in facade + functional:
        assert re.search(r"loss \d+\.\d{4}  accuracy [01]\.\d{3}  \d+ steps/s", line)
    assert re.search(
        r"loss scale 2\*\*\d+ \(\d+ overflowing steps skipped\)", facade[0]
    )
    # Progress goes to stderr, as plain lines when it is not a terminal.
    assert "\r" not in captured.err
    assert re.search(r"facade +\[#+\] 100% 40/40 loss=\d", captured.err)
    assert re.search(r"functional +\[#+\] 100% 40/40 loss=\d", captured.err)


def test_main_runs_one_half_and_rejects_bad_flags(capsys):
    main(["--steps", "20", "--run", "functional"])
    out = capsys.readouterr().out
    assert "functional" in out and "facade" not in out
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
    with pytest.raises(SystemExit):
        main(["--run", "keras"])


def test_progress_redraws_one_line_on_a_terminal():
    out = io.StringIO()
    bar = Progress(10, width=10, stream=out, label="x ", tty=True)
    for done in range(1, 11):
        bar.update(done, loss=1.0 / done)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 10 and text.endswith("\n") and text.count("\n") == 1
    assert "x [##########] 100% 10/10 loss=0.1000" in text


def test_progress_prints_a_line_per_tenth_elsewhere():
    out = io.StringIO()
    bar = Progress(100, width=10, stream=out)
    for done in range(1, 101):
        bar.update(done, loss=0.5)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0%, 10%, ..., 100%
    assert lines[-1] == "[##########] 100% 100/100 loss=0.5000"
