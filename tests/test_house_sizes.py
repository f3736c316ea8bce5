"""Every room small enough to read: no file in samaudio_jax/ over MAX_FILE_LINES lines and
no function (or method) over MAX_FUNCTION_LINES lines, counted from its `def` line to its
last line (nested functions count inside their parent too)."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "samaudio_jax"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
# "path relative to samaudio_jax/" or "path:function" -> why it must stay longer. Empty: every
# file and function fits; add an entry only with the reason it cannot be split.
ALLOWED: dict[str, str] = {}


def _sizes():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        text = path.read_text(encoding="utf-8")
        yield name, len(text.splitlines()), None
        for node in ast.walk(ast.parse(text, filename=name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield name, node.end_lineno - node.lineno + 1, node.name


def test_no_file_or_function_is_over_its_limit():
    over = []
    for name, lines, function in _sizes():
        key = name if function is None else f"{name}:{function}"
        limit = MAX_FILE_LINES if function is None else MAX_FUNCTION_LINES
        if lines > limit and key not in ALLOWED:
            over.append(f"{key}: {lines} lines (limit {limit})")
    assert not over, "; ".join(over)


def test_the_allow_list_names_only_what_is_still_over():
    long = {
        (name if function is None else f"{name}:{function}")
        for name, lines, function in _sizes()
        if lines > (MAX_FILE_LINES if function is None else MAX_FUNCTION_LINES)
    }
    assert set(ALLOWED) <= long, sorted(set(ALLOWED) - long)
