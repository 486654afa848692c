"""Load a YAML spec, validate it, expand its grid, and explain errors (path, line, allowed values)."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from study.contract.spec.study import StudySpec, is_training_path


class SpecError(Exception):
    """A spec that cannot run; ``problems`` are human-readable lines naming the field and allowed values."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Trial:
    """One trained model of a study: the spec with one value per grid axis substituted."""

    index: int
    name: str
    axes: dict[str, str]
    spec: StudySpec

    def to_config(self) -> dict[str, Any]:
        """The JSON form a trial crosses the process boundary in (Ray Tune's config, the parent run's trial list)."""
        return {"name": self.name, "index": self.index, "axes": self.axes, "spec": self.spec.model_dump(mode="json")}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Trial:
        """The trial back from :meth:`to_config` (its spec validated again: it may come from another process)."""
        spec = StudySpec.model_validate(config["spec"])
        return cls(int(config.get("index", 0)), str(config["name"]), dict(config.get("axes", {})), spec)


MAX_SPEC_BYTES = 100_000  # a study spec is a page or two of YAML (the largest here: 4 KB); anything larger is not one
MAX_SPEC_VALUES = 100_000  # values after alias expansion: "billion laughs" files stop here, in milliseconds
MAX_SPEC_DEPTH = 40  # nesting levels (the deepest real spec has 5)
MAX_TRIALS = 1_000  # a grid's size, computed from its axes before anything is expanded
MAX_LIST_ITEMS = 1_000  # any one list (the longest real one, a grid axis, has tens): refused before validation


class _Budget:
    """Counts the values ``_plain`` produces, so alias expansion cannot exhaust memory."""

    def __init__(self, source: str):
        self.source, self.left = source, MAX_SPEC_VALUES

    def take(self, depth: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise SpecError(self.source, [f"the spec expands to more than {MAX_SPEC_VALUES:,} values (YAML aliases "
                                          "repeating a large block?); a study spec is a page of settings"])  # fmt: skip
        if depth > MAX_SPEC_DEPTH:
            raise SpecError(self.source, [f"the spec nests deeper than {MAX_SPEC_DEPTH} levels"])


def _plain(node: Any, budget: _Budget | None = None, depth: int = 0) -> Any:
    """ruamel round-trip nodes -> plain python (so pydantic and json see ordinary types), within ``budget``."""
    if budget is not None:
        budget.take(depth)
    if isinstance(node, dict):
        return {str(k): _plain(v, budget, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        if budget is not None and len(node) > MAX_LIST_ITEMS:
            raise SpecError(budget.source, [f"a list of {len(node):,} items; a spec's lists hold at most "
                                            f"{MAX_LIST_ITEMS:,}"])  # fmt: skip
        return [_plain(v, budget, depth + 1) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _text(path: Path) -> str:
    """The file as UTF-8 text, or a ``SpecError`` naming the file and where it stops being text."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(str(path), ["file not found"]) from None
    except OSError as e:
        raise SpecError(str(path), [f"cannot be read: {e.strerror or e}"]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(str(path), [f"the file is {len(data):,} bytes; a spec is at most {MAX_SPEC_BYTES:,}"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError(str(path), [f"line {line} (byte {e.start}): not UTF-8 text ({e.reason}); save the "
                                    "spec as UTF-8"]) from None  # fmt: skip


def _bracket_depth(text: str) -> int:
    """The deepest nesting of YAML flow collections (``[`` / ``{``), scanned in one pass before parsing."""
    depth = peak = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            peak = max(peak, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return peak


def read_yaml(path: Path) -> tuple[dict[str, Any], Any]:
    """Parse YAML 1.2 (so ``1e-4`` is a float); returns (plain dict, round-trip tree for line numbers).

    The round-trip loader builds only mappings, sequences and scalars (never Python objects from tags), and
    ``_plain`` caps what aliases can expand to.
    """
    text = _text(path)
    if _bracket_depth(text) > MAX_SPEC_DEPTH:  # the parser would recurse for seconds before giving up
        raise SpecError(str(path), [f"the spec nests deeper than {MAX_SPEC_DEPTH} levels"])
    try:
        tree = YAML(typ="rt", pure=True).load(text)
    except YAMLError as e:
        raise SpecError(str(path), [f"not valid YAML: {e}"]) from None
    except RecursionError:
        raise SpecError(str(path), [f"the spec nests deeper than {MAX_SPEC_DEPTH} levels"]) from None
    except Exception as e:  # noqa: BLE001
        # ruamel's constructors raise plain Python errors on some tagged nodes they cannot build (``!!int x``:
        # ValueError; a key repeated in an ``!!omap``: a bare AssertionError; a mapping inside a ``!!set``:
        # TypeError): whatever the reader raises, the file is not a spec, and the user gets a SpecError.
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise SpecError(str(path), [f"not valid YAML: the reader could not build a value ({detail}); a spec is "
                                    "made of plain mappings, lists and scalars, without !!tags"]) from None  # fmt: skip
    if not isinstance(tree, dict):
        raise SpecError(str(path), ["the spec must be a YAML mapping with keys like name, dynamics, network, ..."])
    return _plain(tree, _Budget(str(path))), tree


def grid_size(raw: dict[str, Any]) -> int:
    """How many trials a raw spec's grid makes (the product of its axes' lengths), without expanding it."""
    grid = raw.get("grid") or {}
    size = 1
    for values in grid.values() if isinstance(grid, dict) else []:
        if isinstance(values, list):
            size *= max(len(values), 1)
    return size


def _schema_node(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    return node


def _kind_of(schema: dict[str, Any], branch: dict[str, Any]) -> str | None:
    kind = _schema_node(schema, branch).get("properties", {}).get("kind", {})
    return kind.get("const") or (kind.get("enum") or [None])[0]


def _walk_schema(schema: dict[str, Any], loc: tuple[Any, ...]) -> dict[str, Any] | None:
    """Follow a pydantic error location through the JSON schema (discriminator tags included in loc)."""
    node = _schema_node(schema, schema)
    for seg in loc:
        node = _schema_node(schema, node)
        branches = node.get("oneOf") or node.get("anyOf") or []
        tagged = {_kind_of(schema, b): b for b in branches if _kind_of(schema, b)}
        if isinstance(seg, str) and seg in tagged:  # a discriminator tag inside the error location
            node = _schema_node(schema, tagged[seg])
            continue
        if "anyOf" in node:  # Optional[X]: take the non-null branch
            branches = [b for b in node["anyOf"] if b.get("type") != "null"]
            node = _schema_node(schema, branches[0]) if branches else node
        if isinstance(seg, int):
            node = node.get("items", node.get("prefixItems", [{}])[0] if "prefixItems" in node else {})
        elif "properties" in node:
            if seg not in node["properties"]:
                return None
            node = node["properties"][seg]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return _schema_node(schema, node)


def _data_path(data: Any, loc: tuple[Any, ...]) -> list[Any]:
    """Drop discriminator-tag segments from a pydantic loc so that it addresses the YAML data."""
    path: list[Any] = []
    node = data
    for seg in loc:
        if isinstance(node, dict) and seg not in node and node.get("kind") == seg:
            continue
        path.append(seg)
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            node = None
    return path


def _line_of(tree: Any, path: list[Any]) -> int | None:
    """The 1-based line of ``path`` in the round-trip tree, or of its deepest ancestor found; None when unknown.

    Best effort only: it runs inside the error path, so it must never raise. Not every node carries positions
    (an ``!!omap`` records none per key: ``lc.key`` returns None; tagged or aliased nodes may lack ``lc``)."""
    node, line = tree, None
    for seg in path:
        try:
            if isinstance(node, dict) and seg in node:
                line = node.lc.key(seg)[0] + 1
            elif isinstance(node, list) and isinstance(seg, int) and seg < len(node):
                line = node.lc.item(seg)[0] + 1
            else:
                break
            node = node[seg]
        except (AttributeError, TypeError, KeyError, IndexError):
            break
    return line


def describe_errors(err: ValidationError, data: dict[str, Any], tree: Any = None, prefix: str = "") -> list[str]:
    """One line per pydantic error: ``[line N] path: message (allowed: ...)``."""
    schema = StudySpec.model_json_schema()
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        path = _data_path(data, loc)
        dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        msg = e["msg"]
        ctx = e.get("ctx") or {}
        if e["type"] == "extra_forbidden":
            parent = _walk_schema(schema, loc[:-1])
            keys = sorted((parent or {}).get("properties", {}))
            msg = f"unknown key {path[-1]!r}" + (f"; allowed keys: {', '.join(keys)}" if keys else "")
        elif e["type"] == "union_tag_invalid":
            msg = f"unknown kind {ctx.get('tag')!r}; allowed kinds: {ctx.get('expected_tags')}"
            dotted = f"{dotted}.kind" if dotted else "kind"
        elif e["type"] == "literal_error":
            msg = f"got {e.get('input')!r}; allowed values: {ctx.get('expected')}"
        elif e["type"] == "missing":
            msg = "required field is missing"
        line = _line_of(tree, path) if tree is not None else None
        where = f"[line {line}] " if line else ""
        lines.append(f"{prefix}{where}{dotted or '<spec>'}: {msg}")
    return lines


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        d = d.setdefault(part, {})
        if not isinstance(d, dict):
            raise KeyError(dotted)
    d[parts[-1]] = copy.deepcopy(value)


def _assignments(key: str, value: Any) -> list[tuple[str, Any]]:
    """(field path, value) pairs one grid value sets: itself, or every entry of a zipped axis's mapping."""
    return [(key, value)] if is_training_path(key) else list(value.items())


def value_label(value: Any) -> str:
    """Short human label of a grid value: ``cosine``, ``linear(scale=0.5)``, ``0.001``."""
    if isinstance(value, dict):
        kind = value.get("kind")
        rest = ",".join(f"{k}={value_label(v)}" for k, v in value.items() if k != "kind")
        return f"{kind}({rest})" if kind and rest else str(kind) if kind else f"({rest})"
    if isinstance(value, list | tuple):
        return "[" + ",".join(value_label(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def axis_names(paths: list[str]) -> dict[str, str]:
    """Axis name = last path component, or the full dotted path where the last components clash."""
    last = [p.split(".")[-1] for p in paths]
    return {p: (n if last.count(n) == 1 else p) for p, n in zip(paths, last, strict=True)}


def _trial_name(index: int, axes: dict[str, str]) -> str:
    label = "_".join(f"{k}={v}" for k, v in axes.items()) or "base"
    return re.sub(r"[^A-Za-z0-9_.=,()+-]", "-", f"t{index}_{label}")[:120]


def expand(raw: dict[str, Any], tree: Any = None, source: str = "<spec>") -> tuple[StudySpec, list[Trial]]:
    """Validate a raw spec and expand ``grid`` into trials (cross product, in the order written)."""
    if (size := grid_size(raw)) > MAX_TRIALS:
        raise SpecError(source, [f"grid: {size:,} trials (the product of the axes' lengths); at most {MAX_TRIALS:,} "
                                 "per study: split it into several studies"])  # fmt: skip
    raw = copy.deepcopy(raw)
    grid = raw.get("grid") or {}
    if isinstance(grid, dict):
        # A gridded field may be left out of the base: its first grid value stands in for validation.
        for key, values in grid.items():
            if not (isinstance(values, list) and values):
                continue
            first = values[0]
            pairs = _assignments(key, first) if is_training_path(key) or isinstance(first, dict) else []
            for path, value in pairs:
                try:
                    _get(raw, path)
                except (KeyError, TypeError):
                    try:
                        _set(raw, path, value)
                    except KeyError:
                        pass
    try:
        base = StudySpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(source, describe_errors(e, raw, tree)) from None
    paths = list(base.grid)
    names = axis_names(paths)
    problems: list[str] = []
    trials: list[Trial] = []
    for index, combo in enumerate(itertools.product(*(base.grid[p] for p in paths))):
        data = base.model_dump(mode="json", exclude={"grid", "claims"})  # claims are the study's, checked by the report
        for path, value in zip(paths, combo, strict=True):
            for field_path, field_value in _assignments(path, value):
                try:
                    _set(data, field_path, field_value)
                except (KeyError, TypeError):
                    problems.append(f"grid.{path}: no such field {field_path!r} in the spec")
        axes = {
            names[p]: "+".join(value_label(v) for _, v in _assignments(p, c)) for p, c in zip(paths, combo, strict=True)
        }
        try:
            spec = StudySpec.model_validate(data)
        except ValidationError as e:
            label = ", ".join(f"{k}={v}" for k, v in axes.items())
            problems += describe_errors(e, data, None, prefix=f"grid combination {index} ({label}): ")
            continue
        trials.append(Trial(index=index, name=_trial_name(index, axes), axes=axes, spec=spec))
    if problems:
        raise SpecError(source, sorted(set(problems), key=problems.index))
    return base, trials


def load_study(path: str | Path) -> tuple[StudySpec, list[Trial]]:
    """Read, validate and expand a spec file into (base spec with its grid, trials). Raises SpecError."""
    path = Path(path)
    raw, tree = read_yaml(path)
    return expand(raw, tree, source=str(path))


def spec_fingerprint(trials: list[Trial]) -> str:
    """Stable hash of the expanded trials: a resumed study must have the same trials."""
    blob = json.dumps(
        [
            [t.name, t.spec.model_dump(mode="json", exclude={"tracking", "resources", "claims"}, exclude_defaults=True)]
            for t in trials
        ],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
