"""The Python examples in README.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int):
    exec(compile(BLOCKS[index], f"README.md[block {index}]", "exec"), {})


def _expected_prints(block: str) -> list[str]:
    return [
        line.split("  # ", 1)[1].strip()
        for line in block.splitlines()
        if line.startswith("print(") and "  # " in line
    ]


@pytest.mark.parametrize(
    "index", [i for i, b in enumerate(BLOCKS) if _expected_prints(b)]
)
def test_readme_printed_values_are_the_commented_ones(index: int, capsys):
    """A ``print(...)  # text`` line in an example prints exactly ``text``."""
    expected = _expected_prints(BLOCKS[index])
    exec(compile(BLOCKS[index], f"README.md[block {index}]", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == expected
