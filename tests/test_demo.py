"""The README's main job trains to a good accuracy."""

from __future__ import annotations

from optaxish.demo.__main__ import main
from optaxish.demo._data import spirals
from optaxish.demo._functional import train_functional


def test_functional_training_learns_the_spirals():
    x, y = spirals(n_per_class=200)
    results = train_functional(x, y, steps=600)
    assert results["accuracy"] > 0.9
    assert results["loss"] < 0.35
    assert results["steps_per_second"] > 0


def test_main_prints_a_summary(capsys):
    main(["--steps", "50"])
    out = capsys.readouterr().out
    assert "accuracy" in out and "steps/s" in out
