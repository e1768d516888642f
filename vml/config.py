"""The project file and the config merge: model defaults < ``vergeml.yaml`` < command line.

Keys are normalised (``learning-rate``, ``learning_rate`` and ``learningRate`` are one
key) in the file and on the command line. Every problem is a ``UsageError`` naming the
place (file, line, caret; or the flag), the value and the fix.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vml.errors import UsageError
from vml.models import ModelSpec, get_model
from vml.params import TRAINING_PARAMS, HyperParam, display_key, normalize_key

PROJECT_FILE = "vergeml.yaml"
TRAININGS_DIR = "trainings"
CACHE_DIR = ".cache"

INPUT_TYPES = ("csv",)
CACHE_MODES = ("auto", "disk", "none")

# The shape of vergeml.yaml: a dict is a section, None a leaf. `train` holds
# hyperparameters and `preprocess` a list of ops; both are checked against declarations.
SCHEMA: dict[str, Any] = {
    "model": None,
    "samples_dir": None,
    "val_split": None,
    "test_split": None,
    "random_seed": None,
    "device": None,
    "data": {
        "input": {"type": None, "file": None, "target": None},
        "cache": None,
        "preprocess": None,
    },
    "train": None,
    "list": {"columns": None},
}

# Top-level keys that also act as hyperparameters (the `train:` section overrides them).
TOP_LEVEL_HYPERPARAMS = ("random_seed", "device")


@dataclass(frozen=True)
class Located:
    """A value from the project file and where it was written."""

    value: Any
    mark: yaml.Mark | None = None


@dataclass(frozen=True)
class Split:
    """A val or test split: ``percent`` of the samples or a ``count`` of them."""

    kind: str
    amount: float

    def size(self, total: int) -> int:
        """The number of samples this split takes out of ``total``."""
        if self.kind == "percent":
            return int(round(total * self.amount / 100))
        return int(self.amount)

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.kind == "percent" else str(int(self.amount))


@dataclass(frozen=True)
class DataConfig:
    """Where the data lives and how it is prepared."""

    samples_dir: Path
    input_type: str
    file: str
    target: str
    cache: str
    preprocess: tuple[dict[str, Any], ...]
    val_split: Split
    test_split: Split

    @property
    def path(self) -> Path:
        return self.samples_dir / self.file


@dataclass(frozen=True)
class ProjectConfig:
    """A loaded and checked ``vergeml.yaml``."""

    root: Path
    file: Path
    model: ModelSpec
    data: DataConfig
    file_hyperparameters: dict[str, Located]
    list_columns: tuple[str, ...] | None

    @property
    def trainings_dir(self) -> Path:
        return self.root / TRAININGS_DIR

    @property
    def cache_dir(self) -> Path:
        return self.root / CACHE_DIR

    def declared_hyperparameters(self) -> tuple[HyperParam, ...]:
        """The training loop's knobs followed by the model's own."""
        return TRAINING_PARAMS + self.model.hyperparameters


def find_project_root(start: Path | str = ".") -> Path:
    """The nearest directory at or above ``start`` holding a ``vergeml.yaml``."""
    start = Path(start).resolve()
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory
    raise UsageError(
        f"no {PROJECT_FILE} in {start} or any parent directory "
        "(cd into a project, or create one with: ml new NAME)"
    )


def load_project(root: Path | str) -> ProjectConfig:
    """Read and check ``root/vergeml.yaml``."""
    root = Path(root).resolve()
    file = root / PROJECT_FILE
    if not file.is_file():
        raise UsageError(f"no {PROJECT_FILE} in {root} (create a project with: ml new NAME)")
    tree, marks = _read_yaml(file)
    where = _Locator(file, marks)
    _check_keys(tree, SCHEMA, (), where)

    model = _model(tree, where)
    data = _data_config(root, tree, where)
    hyper = _file_hyperparameters(tree, marks, model, where)
    columns = tree.get("list", {}).get("columns")
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        where.fail(("list", "columns"), "list.columns must be a list of column names")
    return ProjectConfig(
        root=root,
        file=file,
        model=model,
        data=data,
        file_hyperparameters=hyper,
        list_columns=tuple(normalize_key(c) for c in columns) if columns else None,
    )


def parse_cli_overrides(args: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``--key=value`` / ``--key value`` pairs -> {canonical key: (flag as typed, value)}."""
    result: dict[str, tuple[str, str]] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise UsageError(f"unexpected argument {arg!r} (hyperparameters look like --learning-rate=0.01)")
        flag, eq, value = arg.partition("=")
        if not eq:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise UsageError(f"{flag} needs a value (e.g. {flag}=VALUE)")
            value = items[i + 1]
            i += 1
        key = normalize_key(flag[2:])
        if key in result:
            raise UsageError(f"{flag} is given twice (keep one)")
        result[key] = (flag, value)
        i += 1
    return result


def resolve_hyperparameters(project: ProjectConfig, overrides: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Merge declared defaults < project file < command line, validating each value."""
    declared = {p.name: p for p in project.declared_hyperparameters()}
    values = {name: p.default for name, p in declared.items()}
    for name, located in project.file_hyperparameters.items():
        values[name] = located.value
    for key, (flag, raw) in overrides.items():
        param = declared.get(key)
        if param is None:
            hint = _closest(key, declared, like=flag[2:])
            raise UsageError(f"unknown hyperparameter {flag}{hint} (ml help train lists them)")
        try:
            values[key] = param.parse(raw)
        except ValueError as exc:
            raise UsageError(
                f"invalid value {flag}={raw}: {exc}; expected {_expected(param)}, e.g. {flag}={param.default}"
            ) from None
    return values


def _expected(param: HyperParam) -> str:
    if param.choices or param.pattern:
        return f"one of {param.describe_range()}"
    rng = param.describe_range()
    return param.type_name if rng == "any" else f"{param.type_name} {rng}"


def _closest(key: str, known: Iterable[str], like: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f", did you mean {display_key(close[0], like)}?" if close else ""


class _Locator:
    """Turns a key path into ``file:line:col`` plus the source line and a caret."""

    def __init__(self, file: Path, marks: dict[tuple, yaml.Mark]) -> None:
        self.file = file
        self.marks = marks

    def fail(self, path: tuple, message: str) -> None:
        raise UsageError(*_at(self.file, self.marks.get(path), message))


def _at(file: Path, mark: yaml.Mark | None, message: str) -> tuple[str, str]:
    shown = os.path.relpath(file) if not os.path.relpath(file).startswith("../..") else str(file)
    if mark is None:
        return f"{shown}: {message}", ""
    lines = file.read_text(encoding="utf-8", errors="replace").splitlines() or [""]
    if mark.line >= len(lines):  # "unexpected end of file": point after the last line
        mark = yaml.Mark(mark.name, mark.index, len(lines) - 1, len(lines[-1]), None, None)
    source = lines[mark.line]
    caret = f"  {source}\n  {' ' * mark.column}^"
    return f"{shown}:{mark.line + 1}:{mark.column + 1}: {message}", caret


def _read_yaml(file: Path) -> tuple[dict[str, Any], dict[tuple, yaml.Mark]]:
    """Parse safely, normalise keys, and keep where each value was written."""
    text = file.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        marks: dict[tuple, yaml.Mark] = {}
        tree = _construct(loader, node, (), marks, file) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(
            *_at(file, mark, f"YAML syntax error: {problem} (fix the file's indentation or quoting)")
        ) from None
    finally:
        loader.dispose()
    if not isinstance(tree, dict):
        raise UsageError(*_at(file, node.start_mark, "the file must be a mapping of keys"))
    return tree, marks


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, marks: dict, file: Path) -> Any:
    marks[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = normalize_key(str(loader.construct_object(key_node)))
            if key in result:
                raise UsageError(
                    *_at(file, key_node.start_mark, f"duplicate key {key_node.value!r} (keep one)")
                )
            marks[(*path, key, "__key__")] = key_node.start_mark
            result[key] = _construct(loader, value_node, (*path, key), marks, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), marks, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _check_keys(tree: dict, schema: dict, path: tuple, where: _Locator) -> None:
    for key, value in tree.items():
        if key not in schema:
            section = ".".join(path) + "." if path else ""
            raw = f"{section}{display_key(key)}"
            hint = (
                _closest(key, schema, like="-")
                or f" (known keys: {', '.join(display_key(k) for k in schema)})"
            )
            where.fail((*path, key, "__key__"), f"unknown key {raw!r}{hint}")
        sub = schema[key]
        if isinstance(sub, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                where.fail((*path, key), f"{display_key(key)} must be a section of keys")
            _check_keys(value, sub, (*path, key), where)


def _model(tree: dict, where: _Locator) -> ModelSpec:
    name = tree.get("model", "mlp")
    try:
        return get_model(str(name))
    except UsageError as exc:
        where.fail(("model",), exc.message)
        raise


def _data_config(root: Path, tree: dict, where: _Locator) -> DataConfig:
    data = tree.get("data") or {}
    source = data.get("input") or {}
    input_type = str(source.get("type", "csv")).lower()
    if input_type not in INPUT_TYPES:
        where.fail(
            ("data", "input", "type"),
            f"unknown input type {input_type!r} (use one of: {', '.join(INPUT_TYPES)})",
        )
    cache = str(data.get("cache", "auto")).lower()
    if cache not in CACHE_MODES:
        where.fail(("data", "cache"), f"unknown cache mode {cache!r} (use one of: {', '.join(CACHE_MODES)})")
    file = source.get("file")
    if not file:
        where.fail(("data", "input"), "data.input.file is missing (name the CSV file, e.g. file: digits.csv)")
    samples_dir = (root / str(tree.get("samples_dir", "data"))).resolve()
    if not samples_dir.is_relative_to(root):
        where.fail(
            ("samples_dir",),
            f"samples-dir {tree['samples_dir']!r} is outside the project (use a folder inside it)",
        )
    if not (samples_dir / str(file)).resolve().is_relative_to(root):
        where.fail(
            ("data", "input", "file"),
            f"data file {file!r} is outside the project (use a file inside samples-dir)",
        )

    from vml.data.preprocess import OpError, check_ops

    ops = data.get("preprocess") or []
    if not isinstance(ops, list):
        where.fail(("data", "preprocess"), "preprocess must be a list of ops, e.g. - op: standardize")
    try:
        checked = check_ops(ops)
    except OpError as exc:
        where.fail(("data", "preprocess", *exc.path), exc.message)
    val = _split(tree, "val_split", where)
    test = _split(tree, "test_split", where)
    if val.kind == test.kind == "percent" and val.amount + test.amount >= 100:
        where.fail(("test_split",), "val-split and test-split leave no training data (make them smaller)")
    return DataConfig(
        samples_dir=samples_dir,
        input_type=input_type,
        file=str(file),
        target=str(source.get("target", "label")),
        cache=cache,
        preprocess=checked,
        val_split=val,
        test_split=test,
    )


def _split(tree: dict, key: str, where: _Locator) -> Split:
    value = tree.get(key, "10%")
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if 0 <= percent < 100:
                return Split("percent", percent)
        elif not isinstance(value, (bool, float)) and int(text) >= 0:
            return Split("count", int(text))
    except ValueError:
        pass
    where.fail(
        (key,), f"invalid {display_key(key)} {value!r} (use a percentage like 10% or a count like 150)"
    )
    raise AssertionError("unreachable")


def _file_hyperparameters(tree: dict, marks: dict, model: ModelSpec, where: _Locator) -> dict[str, Located]:
    declared = {p.name: p for p in TRAINING_PARAMS + model.hyperparameters}
    found: dict[str, Located] = {}
    layers = [((k,), tree[k]) for k in TOP_LEVEL_HYPERPARAMS if k in tree]
    train = tree.get("train") or {}
    if not isinstance(train, dict):
        where.fail(("train",), "train must be a section of hyperparameters, e.g. epochs: 20")
    layers += [(("train", k), v) for k, v in train.items()]
    for path, raw in layers:
        key = path[-1]
        param = declared.get(key)
        if param is None:
            hint = _closest(key, declared, like="-")
            where.fail(
                (*path, "__key__"),
                f"unknown hyperparameter {display_key(key)!r}{hint} (ml help train lists them)",
            )
        try:
            found[key] = Located(param.parse(raw), marks.get(path))
        except ValueError as exc:
            where.fail(path, f"invalid value for {display_key(key)}: {exc}; expected {_expected(param)}")
    return found
