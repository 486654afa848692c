"""Arbitrary YAML documents, generated: the loader returns a spec or raises the project's ``SpecError``, nothing else.

``test_spec_fuzz.py`` mutates the *values* of real specs; this file varies the *YAML itself*, the part the error
reporter walks for line numbers: tags (``!!omap``, ``!!set``, ``!!pairs``, ``!!binary``, ``!!timestamp``,
``!!python/...``, local tags), anchors and aliases (merge keys included), non-string keys (numbers, null,
booleans, sequences and mappings as keys), scalars YAML reads as dates, bytes, octal or infinities, and these nested
in each other or put in place of any node of a real spec in ``specs/`` (so the errors come from deep inside a
spec, where ``_line_of`` and ``_data_path`` walk the tree).

Derandomized, so every run sees the same cases. A short variant runs by default; the long one is ``slow``. No case
asserts its wall time (a busy machine would make that flaky).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from study.contract.spec import SpecError, load_study

# ruamel warns about a reused anchor name (legal YAML) and leaves the generator of a node it could not build to be
# collected after the error (Python reports that as "Exception ignored"); both are the reader's, not the loader's.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
BASES = [YAML(typ="safe").load(p.read_text()) for p in sorted((ROOT / "specs").rglob("*.yaml"))]

# Scalars as written in a YAML file: plain words the spec uses, numbers in YAML's other spellings, and the
# implicit types a YAML 1.2 reader may resolve (dates, null, booleans).
PLAIN = ["x", "name", "kind", "ddpm", "karras", "cifar10_vp", "1", "0", "-1", "18", "1e-4", "1e400", ".nan", ".inf",
         "-.inf", "null", "~", "true", "no", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "0x1F", "0o17", "1_000",
         "'quoted'", '"caf\\u00e9"', "''", "12:30:45", "'<<'"]  # fmt: skip
# Scalars with an explicit tag, well-formed or not (``!!int x`` cannot be an int), standard or foreign.
TAGGED = ["!!binary aGVsbG8=", "!!binary '//79'", "!!str 1", "!!int 3", "!!int x", "!!float 1", "!!float abc",
          "!!bool true", "!!null ''", "!!timestamp 2001-12-14", "!!python/name:os.system ''",
          "!!python/bytes aGk=", "!!python/none ''", "!custom x", "!<tag:example.com,2000:x> 1", "!!merge <<",
          "!!value =", "!!yaml x"]  # fmt: skip
# Tags put in front of a mapping or a sequence.
MAP_TAGS = ["", "", "", "!!map ", "!!set ", "!!omap ", "!!python/object:os.system ", "!!python/dict ", "!local ",
            "!!python/object/apply:os.system "]  # fmt: skip
SEQ_TAGS = ["", "", "", "!!seq ", "!!omap ", "!!pairs ", "!!set ", "!!python/tuple ", "!local ",
            "!!python/object/apply:os.system "]  # fmt: skip


class _Doc:
    """Anchors written so far in a document (an alias may only refer back)."""

    def __init__(self, prefix: str = "a") -> None:
        self.prefix = prefix
        self.anchors: list[str] = []

    def anchor(self, draw: st.DrawFn) -> str:
        if not draw(st.integers(0, 5)) == 0:
            return ""
        name = f"{self.prefix}{len(self.anchors)}"
        self.anchors.append(name)
        return f"&{name} "


def _node(draw: st.DrawFn, doc: _Doc, depth: int) -> str:
    """One YAML node in flow style (line breaks between items sometimes, so nodes sit on different lines)."""
    kinds = ["plain", "tagged", "alias"] + (["map", "seq", "omap", "set"] if depth < 4 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "alias" and doc.anchors:
        return "*" + draw(st.sampled_from(doc.anchors))
    if kind == "tagged":
        return doc.anchor(draw) + draw(st.sampled_from(TAGGED))
    if kind in ("plain", "alias"):
        return doc.anchor(draw) + draw(st.sampled_from(PLAIN))
    sep = draw(st.sampled_from([", ", ",\n  "]))
    n = draw(st.integers(0, 4))
    if kind == "seq":
        items = [_node(draw, doc, depth + 1) for _ in range(n)]
        return doc.anchor(draw) + draw(st.sampled_from(SEQ_TAGS)) + "[" + sep.join(items) + "]"
    if kind == "omap":  # an ordered map: a sequence of one-key mappings (or a malformed one)
        items = ["{" + _key(draw, doc, depth) + ": " + _node(draw, doc, depth + 1) + "}" for _ in range(n)]
        return doc.anchor(draw) + "!!omap [" + sep.join(items) + "]"
    if kind == "set":  # a set: keys with null values
        keys = [_key(draw, doc, depth) for _ in range(n)]  # before the set's own anchor: no alias to itself
        return doc.anchor(draw) + "!!set {" + sep.join(keys) + "}"
    items = [_key(draw, doc, depth) + ": " + _node(draw, doc, depth + 1) for _ in range(n)]
    if doc.anchors and draw(st.booleans()):
        items.append("<<: *" + draw(st.sampled_from(doc.anchors)))  # a merge key, often of a non-mapping
    return doc.anchor(draw) + draw(st.sampled_from(MAP_TAGS)) + "{" + sep.join(items) + "}"


def _key(draw: st.DrawFn, doc: _Doc, depth: int) -> str:
    """A mapping key: mostly a spec word, else a number, null, a boolean, a tagged scalar, an alias or a
    collection (a complex key)."""
    kind = draw(st.sampled_from(["word", "word", "word", "scalar", "complex"]))
    if kind == "word":
        return draw(st.sampled_from(["name", "kind", "preset", "steps", "training", "grid", "dynamics", "x"]))
    if kind == "scalar":
        return draw(st.sampled_from(["1", "1.5", "null", "true", "2001-12-14", "!!binary aGk=", "!!int 2", "~"]))
    if doc.anchors and draw(st.booleans()):
        return "*" + draw(st.sampled_from(doc.anchors)) + " "  # the space: ``*a0:`` would name an anchor "a0:"
    return "? " + _node(draw, doc, depth + 2)


def _render(value: Any, doc: _Doc, draw: st.DrawFn, inject: tuple | None, fragment: str, omap: tuple | None) -> str:
    """A real spec's subtree in flow style, with ``fragment`` in place of the node at ``inject`` and the mapping at
    ``omap`` written as an ``!!omap`` (same content, no positions per key)."""
    if inject == ():
        return fragment
    if isinstance(value, dict):
        parts = [(json.dumps(k), _render(v, doc, draw, _rest(inject, k), fragment, _rest(omap, k)))
                 for k, v in value.items()]  # fmt: skip
        if omap == ():
            return "!!omap [" + ",\n".join(f"{{{k}: {v}}}" for k, v in parts) + "]"
        return doc.anchor(draw) + "{" + ",\n".join(f"{k}: {v}" for k, v in parts) + "}"
    if isinstance(value, list):
        items = [_render(v, doc, draw, _rest(inject, i), fragment, _rest(omap, i)) for i, v in enumerate(value)]
        return "[" + ",\n".join(items) + "]"
    return json.dumps(value, allow_nan=True).replace("NaN", ".nan").replace("Infinity", ".inf")


def _rest(path: tuple | None, seg: Any) -> tuple | None:
    """The rest of ``path`` below ``seg``, or None when ``path`` does not go through ``seg``."""
    return path[1:] if path and path[0] == seg else None


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every node's path in a spec (mappings and lists included, not only leaves)."""
    out = [path]
    if isinstance(node, dict):
        out += [p for k, v in node.items() for p in _paths(v, (*path, k))]
    elif isinstance(node, list):
        out += [p for i, v in enumerate(node) for p in _paths(v, (*path, i))]
    return out


def _maps(node: Any, path: tuple = ()) -> list[tuple]:
    return [p for p in _paths(node, path) if _at(node, p, dict)]


def _at(node: Any, path: tuple, kind: type) -> bool:
    for seg in path:
        node = node[seg]
    return isinstance(node, kind)


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    """A whole random document, or a real spec with one node replaced by a random one and/or one mapping made an
    ``!!omap`` (the reporter then looks up lines in trees the round-trip loader built from tags)."""
    doc = _Doc()
    if draw(st.integers(0, 3)) == 0:
        return _node(draw, doc, 0) + "\n"
    base = BASES[draw(st.integers(0, len(BASES) - 1))]
    paths = _paths(base)
    inject = paths[draw(st.integers(1, len(paths) - 1))] if draw(st.booleans()) else None
    maps = _maps(base)
    omap = maps[draw(st.integers(0, len(maps) - 1))] if inject is None or draw(st.booleans()) else None
    # the fragment names its own anchors: it is drawn before the text it lands in, and an alias must follow its anchor
    fragment = _node(draw, _Doc("f"), 1) if inject is not None else ""
    return _render(base, doc, draw, inject, fragment, omap) + "\n"


def _load(tmp: Path, text: str) -> None:
    path = tmp / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_study(path)
    except SpecError as e:
        assert e.source == str(path) and e.problems, text
        assert all(isinstance(p, str) and p for p in e.problems), text
    # any other exception propagates and fails the test, with the document in hypothesis' report


_SETTINGS: dict[str, Any] = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}


@settings(max_examples=200, **_SETTINGS)
@given(text=yaml_documents())
def test_any_yaml_document_ends_in_a_spec_or_spec_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    _load(tmp_path_factory.mktemp("yaml"), text)


@pytest.mark.slow
@settings(max_examples=5000, **_SETTINGS)
@given(text=yaml_documents())
def test_any_yaml_document_ends_in_a_spec_or_spec_error_long(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    _load(tmp_path_factory.mktemp("yaml"), text)


# The two reported crashes, kept as plain examples: the reporter looked up an ``!!omap``'s key lines (which it does
# not record) and the Karras preset hashed a mapping.
@pytest.mark.parametrize("text", [
    "!!omap\n- name: x\n- training: {epochs: true}\n",
    "!!omap [{name: x}, {training: !!omap [{epochs: true}]}]\n",
])  # fmt: skip
def test_an_omap_spec_is_refused_with_the_fields_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "omap.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as e:
        load_study(path)
    assert any("training" in p for p in e.value.problems)


def test_a_preset_given_as_a_mapping_is_refused_with_the_allowed_presets(tmp_path: Path) -> None:
    base = json.loads(json.dumps(BASES[0]))
    base.setdefault("evaluation", {})["samplers"] = [{"kind": "karras", "preset": {"a": 1}}]
    path = tmp_path / "preset.yaml"
    path.write_text(json.dumps(base))
    with pytest.raises(SpecError) as e:
        load_study(path)
    assert any("preset" in p and "cifar10_vp" in p for p in e.value.problems), e.value.problems
