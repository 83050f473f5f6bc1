"""Rules of the code as a whole (issue 13): module size, and no measured figures in the code's prose."""
import ast
import io
import re
import tokenize
from pathlib import Path

import lm_app

PACKAGE = Path(lm_app.__file__).parent
MAX_LINES = 400
# Being reshaped by other items of issue 13 at the same time; leave this set empty once they land.
# A measured figure: a number with a unit of time or throughput, or a speed-up ratio.
FIGURE = re.compile(r"\d[\d,.]*\s*(s|ms|µs|s/step|tokens/s|tok/s|[KMG]B/s|GFLOP/s|requests/s|req/s)\b"
                    r"|\d[\d.]*\s*[x×]\s+(faster|slower|as fast)|twice as fast|half the time", re.IGNORECASE)


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def prose(path):
    """The comments and docstrings of a module, with their line numbers."""
    source = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_measured_figures_live_in_bench_results_not_in_the_code():
    found = [f"{p.relative_to(PACKAGE)}:{line}: {m.group(0)!r}"
             for p in modules()
             for line, text in prose(p) for m in FIGURE.finditer(text)]
    assert not found, "\n".join(found)
