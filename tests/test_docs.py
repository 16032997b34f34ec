"""Every Python block of ``docs/*.md`` runs as written and prints what it says.

A block is the text between a line "```python" and the next line "```". Each one
runs on its own, in a fresh namespace, so it must be self-contained. A line
``print(...)  # text`` at the top level of a block (not indented) states what that
call prints; the block's whole output must be those texts, in order, so a block
that prints has such a comment on every print.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = ("migrating_from_tf_keras.md", "migrating_from_optax.md")
_FENCE = re.compile(r"^```python\n(.*?)^```$", flags=re.S | re.M)


def _blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, code)`` of each python block of ``path``."""
    text = path.read_text()
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)
    ]


def _cases() -> list:
    return [
        pytest.param(path, line, code, id=f"{path.stem}-block{i}-line{line}")
        for path in sorted(DOCS.glob("*.md"))
        for i, (line, code) in enumerate(_blocks(path))
    ]


def _expected_output(code: str) -> list[str]:
    """The commented text of each top-level ``print(...)  # text`` line."""
    return [
        line.split("  # ", 1)[1].strip()
        for line in code.splitlines()
        if line.startswith("print(") and "  # " in line
    ]


@pytest.mark.parametrize("name", GUIDES)
def test_guide_has_python_blocks(name: str):
    assert _blocks(DOCS / name), f"docs/{name} has no python block"


@pytest.mark.parametrize(("path", "line", "code"), _cases())
def test_docs_block_runs_and_prints_what_it_says(path: Path, line: int, code: str):
    out = io.StringIO()
    # Padded so that a traceback shows the line numbers of the .md file.
    source = "\n" * (line - 1) + code
    with contextlib.redirect_stdout(out):
        exec(compile(source, str(path), "exec"), {"__name__": f"docs_{path.stem}"})
    printed = [text.strip() for text in out.getvalue().splitlines()]
    assert printed == _expected_output(code)
