"""Malformed specs, generated: every one ends with the project's own located error, exit 2, no traceback.

Hypothesis mutates the real specs in ``specs/`` (derandomized, so CI sees the same cases every run). Classes:

* values: wrong types (strings, lists, maps, null, booleans for numbers), out-of-range and huge numbers (1e29,
  -1, 0), infinities and NaN, for a randomly chosen leaf of a real spec;
* structure: deleted keys, unknown keys, deep nesting, huge lists (10^4 samplers), grids of 10^6 trials;
* files: YAML alias bombs, invalid YAML, binary junk and non-UTF-8 bytes, an empty file, a top-level list.

1,200 cases go through the loader and the CLI's ``main`` in-process, every one exit 2 with a message naming the file;
plus 6 representative ones through a real ``python -m study validate`` subprocess. No case asserts its wall time: on a
busy machine a time bound fails at random (hypothesis calls it flaky); how fast the worst cases are refused is a row of
the benchmark suite (``bench/suite.py``, ``refusal_row``).
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from study.cli import main
from study.contract.spec import SpecError, load_study

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.yaml"))
BASES = [YAML(typ="safe").load(p.read_text()) for p in SPECS]

BAD_VALUES = st.one_of(
    st.sampled_from([True, False, None, "", "abc", [], {}, [1, 2], {"kind": "nope"}, -1, 0, 10**29, -(10**29),
                     1e29, -1e-300, math.inf, -math.inf, math.nan, "1e3", 2**63, [10**29]]),  # fmt: skip
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(node: Any, path: tuple, value: Any) -> None:
    for seg in path[:-1]:
        node = node[seg]
    node[path[-1]] = value


def _delete(node: Any, path: tuple) -> None:
    for seg in path[:-1]:
        node = node[seg]
    del node[path[-1]]


def _get(node: Any, path: tuple) -> Any:
    for seg in path:
        node = node[seg]
    return node


def _nonsense_for(old: Any, new: Any) -> bool:
    """Whether ``new`` in place of the number ``old`` must be refused: a boolean, not finite, or absurdly large."""
    if isinstance(old, bool) or not isinstance(old, int | float):
        return False
    if isinstance(new, bool):
        return True
    return isinstance(new, int | float) and (not math.isfinite(new) or abs(new) >= 1e29)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, str | bytes, bool]:
    """(class, a spec file's content, whether it must be refused). A random value may happen to be valid."""
    base = json.loads(json.dumps(BASES[draw(st.integers(0, len(BASES) - 1))]))
    kind = draw(st.sampled_from(["value", "value", "value", "delete", "unknown", "nest", "list", "grid", "file"]))
    leaves = [p for p in _leaves(base) if p]
    path = leaves[draw(st.integers(0, len(leaves) - 1))]
    must_fail = kind != "value"
    if kind == "value":
        old, new = _get(base, path), draw(BAD_VALUES)
        must_fail = _nonsense_for(old, new) and path[-1] != "S_tmax"
        _set(base, path, new)
    elif kind == "delete":
        base.pop(draw(st.sampled_from(["name", "training", "evaluation"])), None)
    elif kind == "unknown":
        parent = path[:-1] if isinstance(_get(base, path[:-1]), dict) else ()
        _set(base, (*parent, "no_such_key_" + draw(st.text("abc", min_size=1, max_size=5))), 1)
    elif kind == "nest":
        deep: Any = 1
        for _ in range(draw(st.integers(50, 400))):
            deep = {"a": deep}
        base["training"] = deep
    elif kind == "list":
        base["evaluation"]["samplers"] = [{"kind": "ddim", "steps": 5}] * draw(st.sampled_from([65, 1000, 10_000]))
    elif kind == "grid":
        base["grid"] = {"training.seed": list(range(1000)), "training.lr": [1e-3] * 1000}
    else:
        return kind, draw(st.sampled_from([
            "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
                f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "name: x\n  bad: indent\n: :\n", "[1, 2, 3]\n", "", "name: [unclosed\n",
            b"\x00\x01\xff\xfe binary junk", "name: caf\xe9\n".encode("latin-1"),
        ])), True  # fmt: skip
    # JSON is YAML 1.2: any mutation above is written as it is (NaN and infinities in YAML's own spelling)
    text = json.dumps(base, allow_nan=True)
    return kind, text.replace("NaN", ".nan").replace("-Infinity", "-.inf").replace("Infinity", ".inf"), must_fail


def _write(tmp: Path, content: str | bytes) -> Path:
    path = tmp / "fuzz.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _refused(path: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, err.getvalue()


@pytest.mark.slow
@settings(max_examples=1200, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(case=malformed())
def test_generated_malformed_specs_are_refused_with_a_located_error(tmp_path_factory, case: tuple) -> None:
    """Each case ends in ``SpecError`` (never another exception) or, for a random value that happens to be valid,
    loads; a case built to be malformed must be refused."""
    kind, content, must_fail = case
    path = _write(tmp_path_factory.mktemp("fuzz"), content)
    try:
        load_study(path)
    except SpecError as e:
        assert e.source == str(path) and e.problems
    else:
        assert not must_fail, f"{kind} accepted: {content[:300]!r}"
        return
    code, err = _refused(path)
    assert code == 2 and err.startswith(f"error: {path}") and "Traceback" not in err, err[:500]


@pytest.mark.parametrize("content", [
    "name: x\ntraining: {epochs: true}\n", "training:\n  lr: .inf\n", b"name: \xff\xfe\n",
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    "!!python/object/apply:os.system ['touch pwned']\n", "[" * 60 + "1" + "]" * 60 + "\n",
    "name: x\ntraining: " + "[" * 5000 + "]" * 5000 + "\n",
])  # fmt: skip
def test_the_real_cli_refuses_representative_cases(tmp_path: Path, content: str | bytes) -> None:
    path = _write(tmp_path, content)
    # the timeout only stops a hung interpreter; it is wide because a busy machine may take a minute to import torch
    proc = subprocess.run([sys.executable, "-m", "study", "validate", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=900)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"error: {path}") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "pwned").exists()
