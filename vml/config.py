"""The project file and the config merge: model defaults < ``vergeml.yaml`` < command line.

Keys are normalised (``learning-rate``, ``learning_rate`` and ``learningRate`` are one
key) in the file and on the command line. Every problem is a ``UsageError`` naming the
place (file, line, caret; or the flag), the value and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vml.errors import UsageError, did_you_mean
from vml.models import ModelSpec, get_model
from vml.params import (
    INT_MAX,
    REGRESSION_LOSSES,
    SWITCHES,
    TRAINING_PARAMS,
    HyperParam,
    display_key,
    normalize_key,
)
from vml.paths import (
    CONFIG_FILE,
    PROJECT_DIR_VARIABLE,
    PROJECT_FILE,
    RUN_PROJECT_FILE,
    cache_dir,
    db_path,
    project_file,
    run_dir,
    trainings_dir,
)

INPUT_TYPES = ("csv", "npz", "labeled-image")
# `mem-in` and `disk-in` (VergeML's) keep only the decoded input; see vml.data.prepare.
# VergeML's other sources (vergeml/sources/): what vml reads instead.
VERGEML_INPUT_TYPES = {
    "mnist": "reads npz instead (save the images as x and the labels as y: type: npz, file: mnist.npz)",
    "image": "trains on labeled data only (put the images in class folders: type: labeled-image)",
    "features": "reads csv instead (type: csv, file: FILE.csv, target: COLUMN)",
}
CACHE_MODES = ("auto", "disk", "mem", "none", "mem-in", "disk-in")
MISSING_MODES = ("error", "drop", "mean")
IMAGE_PATTERNS = tuple(
    f"**/*.{ext}"
    for base in ("png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp")
    for ext in (base, base.upper())
)

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
        "input": {
            "type": None,
            "file": None,
            "target": None,
            "features": None,
            "missing": None,
            "x": None,
            "y": None,
            "input_patterns": None,
        },
        "cache": None,
        "preprocess": None,
    },
    "train": None,
    # Per-command sections (VergeML's): defaults for that command's options.
    "list": {"columns": None, "sort": None, "order": None, "output": None, "format": None},
    "predict": {"labels": None, "top": None, "resize": None, "compact": None, "format": None},
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
    """A val or test split: ``percent`` of the samples, a ``count`` of them, or the
    samples at ``path`` (a directory of images, or a file like the input's)."""

    kind: str
    amount: float = 0
    path: Path | None = None

    def size(self, total: int) -> int:
        """The number of samples this split takes out of ``total`` (0 for a path)."""
        if self.kind == "percent":
            return int(round(total * self.amount / 100))
        return int(self.amount) if self.kind == "count" else 0

    def __str__(self) -> str:
        if self.kind == "path":
            return str(self.path)
        return f"{self.amount:g}%" if self.kind == "percent" else str(int(self.amount))


@dataclass(frozen=True)
class InputConfig:
    """``data.input``: the source type and its options."""

    type: str
    file: str | None
    target: str
    features: tuple[str, ...] | None
    missing: str
    x: str
    y: str
    patterns: tuple[str, ...]

    def options(self) -> dict[str, Any]:
        """The options that change what the source reads (part of the fingerprint)."""
        if self.type == "csv":
            return {
                "file": self.file,
                "target": self.target,
                "features": self.features,
                "missing": self.missing,
            }
        if self.type == "npz":
            return {"file": self.file, "x": self.x, "y": self.y}
        return {"input_patterns": list(self.patterns)}


@dataclass(frozen=True)
class DataConfig:
    """Where the data lives and how it is prepared."""

    samples_dir: Path
    input: InputConfig
    cache: str
    preprocess: tuple[dict[str, Any], ...]
    val_split: Split
    test_split: Split
    notes: tuple[str, ...] = ()  # where VergeML's ops would do otherwise (said as data is prepared)

    @property
    def path(self) -> Path:
        """The input: a file in samples-dir, or samples-dir itself for images."""
        return self.samples_dir / self.input.file if self.input.file else self.samples_dir


@dataclass(frozen=True)
class ProjectConfig:
    """A loaded and checked ``vergeml.yaml``."""

    root: Path
    file: Path
    model: ModelSpec
    data: DataConfig
    file_hyperparameters: dict[str, Located]
    list_columns: tuple[str, ...] | None
    # The `list:` and `predict:` sections: defaults for those commands, which their
    # command-line options override. None: not set.
    list_sort: str | None = None  # in --sort's form: "test_acc", or "-test_acc" descending
    list_format: str | None = None  # table, json, csv or md
    predict_top: int | None = None  # labels shown per input
    predict_format: str | None = None  # table, json or csv
    predict_compact: bool | None = None  # one line an input: the input and its top label
    predict_resize: str | None = None  # VergeML's resize mode: fill, aspect-fill, aspect-fit

    @property
    def trainings_dir(self) -> Path:
        return trainings_dir(self.root)

    @property
    def db_path(self) -> Path:
        return db_path(self.root)

    @property
    def cache_dir(self) -> Path:
        return cache_dir(self.root)

    def declared_hyperparameters(self) -> tuple[HyperParam, ...]:
        """The training loop's knobs followed by the model's own."""
        return TRAINING_PARAMS + self.model.hyperparameters


def find_project_root(start: Path | str | None = None) -> Path:
    """The nearest directory at or above ``start`` holding a ``vergeml.yaml`` (or the
    one ``ml --file`` names); ``start`` defaults to ``ml --project-dir``'s, else the
    current directory."""
    start = Path((os.environ.get(PROJECT_DIR_VARIABLE) or ".") if start is None else start).resolve()
    for directory in (start, *start.parents):
        if project_file(directory).is_file():
            return directory
    raise UsageError(
        f"no {PROJECT_FILE} in {start} or any parent directory "
        "(cd into a project, or create one with: ml new NAME)"
    )


def load_run_project(root: Path | str, name: str, project: ProjectConfig | None = None) -> ProjectConfig:
    """The project settings run ``name`` trains with: its own project file (a
    runs-file entry's, kept in its folder), else ``project`` or the project's
    ``vergeml.yaml``."""
    own = run_dir(Path(root), name) / RUN_PROJECT_FILE
    if own.is_file():
        return load_project(root, own)
    return project or load_project(root)


def load_project(root: Path | str, file: Path | None = None) -> ProjectConfig:
    """Read and check ``root/vergeml.yaml`` (or ``file``: a project file with paths
    relative to ``root``, as a runs-file entry's)."""
    root = Path(root).resolve()
    file = file or project_file(root)
    if not file.is_file():
        raise UsageError(f"no {PROJECT_FILE} in {root} (create a project with: ml new NAME)")
    tree, marks = _read_yaml(file)
    return _project_from_tree(root, file, *_with_given_settings(root, tree, marks))


# VergeML's global options that set project settings (ml --samples-dir=DIR train): they
# win over the project file and reach every process of the command (workers,
# schedulers) as these environment variables.
SETTING_VARIABLES = {
    "model": "VML_MODEL",
    "samples_dir": "VML_SAMPLES_DIR",
    "val_split": "VML_VAL_SPLIT",
    "test_split": "VML_TEST_SPLIT",
    "cache": "VML_CACHE",
}


def _with_given_settings(
    root: Path, tree: dict[str, Any], marks: dict[tuple, yaml.Mark]
) -> tuple[dict[str, Any], dict[tuple, yaml.Mark]]:
    """``tree`` with the settings given on the command line in place of the file's,
    each checked first, so that a bad one is named by its flag."""
    given = {key: os.environ[var] for key, var in SETTING_VARIABLES.items() if os.environ.get(var)}
    if not given:
        return tree, marks
    for key, value in given.items():
        flag = f"--{display_key(key)}"
        where = _Locator(Path(flag), {})
        if key == "model":
            _model(root, {key: value}, where)
        elif key == "samples_dir":
            _inside(root, value, (key,), "samples-dir", where)
        elif key == "cache" and value.lower() not in CACHE_MODES:
            raise UsageError(f"unknown {flag} {value!r} (use one of: {', '.join(CACHE_MODES)})")
        elif key.endswith("_split"):
            _split(root, {key: value}, key, where)
    tree = dict(tree)
    cache = given.pop("cache", None)
    if cache is not None and isinstance(tree.get("data") or {}, dict):  # else the file's error stands
        tree["data"] = {**(tree.get("data") or {}), "cache": cache}
        marks = {path: mark for path, mark in marks.items() if path[:2] != ("data", "cache")}
    tree.update(given)
    # A problem the merged settings still have must not point at the file's old value.
    marks = {path: mark for path, mark in marks.items() if path[:1] not in {(k,) for k in given}}
    return tree, marks


# What a run's config.yaml says beyond its project settings.
RECORD_ONLY_KEYS = ("name", "fingerprint", "classes")


def recorded_project(root: Path | str, folder: Path) -> tuple[ProjectConfig, dict[str, Any]] | None:
    """The project settings a run recorded in its ``config.yaml`` (model, data, splits,
    preprocessing: what ``ml rerun`` trains with), and them as a project file's tree
    (without ``train:``: a rerun is given every hyperparameter). None when the run has
    no config.yaml."""
    file = folder / CONFIG_FILE
    if not file.is_file():
        return None
    tree, marks = _read_yaml(file)
    settings = {key: value for key, value in tree.items() if key not in (*RECORD_ONLY_KEYS, "train")}
    return _project_from_tree(Path(root).resolve(), file, settings, marks), settings


def _project_from_tree(
    root: Path, file: Path, tree: dict[str, Any], marks: dict[tuple, yaml.Mark]
) -> ProjectConfig:
    where = _Locator(file, marks)
    tree = _vergeml_forms(tree, where)
    _check_keys(tree, SCHEMA, (), where)

    model = _model(root, tree, where)
    data = _data_config(root, tree, where)
    hyper = _file_hyperparameters(tree, marks, model, where)
    return ProjectConfig(
        root=root,
        file=file,
        model=model,
        data=data,
        file_hyperparameters=hyper,
        **_list_section(tree.get("list") or {}, where),
        **_predict_section(tree.get("predict") or {}, where),
    )


# VergeML's project-file keys vml reads elsewhere: each a one-line pointer to vml's form.
ELSEWHERE_KEYS = {
    "trainings_dir": "vml takes it on the command line: ml --trainings-dir=DIR COMMAND (or VML_TRAININGS_DIR=DIR)",
    "cache_dir": "vml takes it on the command line: ml --cache-dir=DIR COMMAND (or VML_CACHE_DIR=DIR)",
}
DEVICE_KEYS = ("id", "memory", "grow_memory")


def _vergeml_forms(tree: dict[str, Any], where: _Locator) -> dict[str, Any]:
    """VergeML's spellings of vml keys: ``list: [columns...]`` (its docs' form) and
    ``device: {id: gpu:1, memory: 20%, grow-memory: true}`` (PyTorch takes GPU
    memory as it needs it, so only ``id`` counts)."""
    tree = dict(tree)
    for key, pointer in ELSEWHERE_KEYS.items():
        if key in tree:
            where.fail((key, "__key__"), f"{display_key(key)} in the project file: {pointer}")
    if isinstance(tree.get("list"), list):
        tree["list"] = {"columns": tree["list"]}
    device = tree.get("device")
    if isinstance(device, dict):
        for key in device:
            if key not in DEVICE_KEYS:
                where.fail(
                    ("device", key, "__key__"),
                    f"unknown key 'device.{display_key(key)}' (known keys: {', '.join(map(display_key, DEVICE_KEYS))})",
                )
        tree["device"] = device.get("id", "auto")
    return tree


LIST_OUTPUTS = ("table", "json", "csv", "md")
PREDICT_OUTPUTS = ("table", "json", "csv")
PREDICT_RESIZE_MODES = ("fill", "aspect-fill", "aspect-fit")
# VergeML's names for columns vml calls otherwise.
COLUMN_ALIASES = {"ai": "instance", "created_at": "training_start"}


def _column_names(value: Any) -> list[str] | None:
    """A list of names, or one string of comma-separated names (VergeML's form)."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return [COLUMN_ALIASES.get(normalize_key(c.strip()), normalize_key(c.strip())) for c in value]
    return None


def _list_section(section: dict[str, Any], where: _Locator) -> dict[str, Any]:
    """``list:``: ``columns``, ``sort`` and ``order`` (VergeML's), ``output`` or ``format``."""
    at = ("list",)
    columns = _column_names(section.get("columns"))
    if "columns" in section and columns is None:
        where.fail((*at, "columns"), "list.columns must be a list of column names, e.g. [instance, test_acc]")
    order = section.get("order")
    if order is not None and str(order).lower() not in ("asc", "desc"):
        where.fail((*at, "order"), f"invalid list.order {order!r} (use asc or desc)")
    sort = None
    if section.get("sort") is not None or order is not None:
        # VergeML's default column; --sort's forms (-KEY, KEY:desc) work too.
        raw = str(section.get("sort", "training_start")).strip()
        bare = raw.lstrip("-").removesuffix(":desc").removesuffix(":asc")
        descending = raw.startswith("-") or raw.endswith(":desc")
        keys = _column_names(bare) or []
        if len(keys) != 1:
            where.fail(
                (*at, "sort"), f"list.sort {raw!r}: vml sorts by one column (keep one, e.g. sort: test_acc)"
            )
        if order is not None:
            wanted = str(order).lower() == "desc"
            if bare != raw and wanted != descending:
                where.fail(
                    (*at, "order"), f"list.order {order} contradicts list.sort {raw!r} (keep one direction)"
                )
            descending = wanted
        sort = f"-{keys[0]}" if descending else keys[0]
    return {
        "list_columns": tuple(columns) if columns else None,
        "list_sort": sort,
        "list_format": _output(section, at, LIST_OUTPUTS, where),
    }


def _predict_section(section: dict[str, Any], where: _Locator) -> dict[str, Any]:
    """``predict:``: ``labels`` (VergeML's) or ``top``, ``compact``, ``resize``, ``format``."""
    at = ("predict",)
    if "labels" in section and "top" in section:
        where.fail((*at, "top"), "predict.labels and predict.top are one setting (keep one)")
    key = "labels" if "labels" in section else "top"
    top = section.get(key)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        where.fail((*at, key), f"invalid predict.{key} {top!r} (use a whole number of labels ≥ 1, e.g. 3)")
    compact = section.get("compact")
    if compact is not None and not isinstance(compact, bool):
        where.fail((*at, "compact"), f"invalid predict.compact {compact!r} (use true or false)")
    resize = section.get("resize")
    if resize is not None and str(resize).lower() not in PREDICT_RESIZE_MODES:
        where.fail(
            (*at, "resize"),
            f"invalid predict.resize {resize!r} (use one of: {', '.join(PREDICT_RESIZE_MODES)})",
        )
    return {
        "predict_top": top,
        "predict_format": _output(section, at, PREDICT_OUTPUTS, where),
        "predict_compact": compact,
        "predict_resize": str(resize).lower() if resize is not None else None,
    }


def _output(section: dict[str, Any], at: tuple, allowed: tuple[str, ...], where: _Locator) -> str | None:
    """``format`` (vml's) or ``output`` (VergeML's): the command's output format."""
    name = at[0]
    if "output" in section and "format" in section:
        where.fail((*at, "format"), f"{name}.output and {name}.format are one setting (keep one)")
    key = "output" if "output" in section else "format"
    value = section.get(key)
    if value is not None and str(value).lower() not in allowed:
        where.fail((*at, key), f"invalid {name}.{key} {value!r} (use one of: {', '.join(allowed)})")
    return str(value).lower() if value is not None else None


def parse_cli_overrides(args: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``--key=value`` / ``--key value`` pairs -> {canonical key: (flag as typed, value)};
    a switch (``--require-clean``) alone means ``true``."""
    result: dict[str, tuple[str, str]] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise UsageError(f"unexpected argument {arg!r} (hyperparameters look like --learning-rate=0.01)")
        flag, eq, value = arg.partition("=")
        bare = not eq and (i + 1 >= len(items) or items[i + 1].startswith("--"))
        if bare and normalize_key(flag[2:]) in SWITCHES:
            value = "true"
        elif not eq:
            if bare:
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
    hint = did_you_mean(key, known, "", show=lambda k: display_key(k, like))
    return f", {hint}" if hint else ""


class _Locator:
    """Turns a key path into ``file:line:col`` plus the source line and a caret."""

    def __init__(self, file: Path, marks: dict[tuple, yaml.Mark]) -> None:
        self.file = file
        self.marks = marks

    def fail(self, path: tuple, message: str) -> None:
        raise UsageError(*_at(self.file, self.marks.get(path), message))


def _at(file: Path, mark: yaml.Mark | None, message: str) -> tuple[str, str]:
    shown = _shown(file)
    if mark is None:
        return f"{shown}: {message}", ""
    lines = file.read_text(encoding="utf-8", errors="replace").splitlines() or [""]
    if mark.line >= len(lines):  # "unexpected end of file": point after the last line
        mark = yaml.Mark(mark.name, mark.index, len(lines) - 1, len(lines[-1]), None, None)
    source = lines[mark.line]
    caret = f"  {source}\n  {' ' * mark.column}^"
    return f"{shown}:{mark.line + 1}:{mark.column + 1}: {message}", caret


def _shown(file: Path) -> str:
    return os.path.relpath(file) if not os.path.relpath(file).startswith("../..") else str(file)


def read_user_text(
    file: Path, shown: str | None = None, fix: str = "replace it with YAML saved as UTF-8"
) -> str:
    """The text of a file the user writes (vergeml.yaml, a runs file, a CSV file);
    ``UsageError`` naming the file (as ``shown``) and ending in ``fix`` when it is not
    UTF-8 text, or naming it when it cannot be read. ``FileNotFoundError`` is left to
    the caller, which knows the fix."""
    shown = shown or _shown(file)
    try:
        data = file.read_bytes()
    except (IsADirectoryError, PermissionError) as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror} (make it a readable file)") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise UsageError(
            f"{shown}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x}; {fix})"
        ) from None


def _read_yaml(file: Path) -> tuple[dict[str, Any], dict[tuple, yaml.Mark]]:
    """Parse safely, normalise keys, and keep where each value was written."""
    text = read_user_text(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        marks: dict[tuple, yaml.Mark] = {}
        tree = _construct(loader, node, (), marks, file) if node is not None else {}
    except yaml.YAMLError as exc:
        raise _syntax_error(file, exc) from None
    finally:
        loader.dispose()
    if not isinstance(tree, dict):
        raise UsageError(*_at(file, node.start_mark, "the file must be a mapping of keys"))
    return tree, marks


def _syntax_error(file: Path, exc: yaml.YAMLError) -> UsageError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return UsageError(
        *_at(file, mark, f"YAML syntax error: {problem} (fix the file's indentation or quoting)")
    )


def read_user_yaml(file: Path) -> Any:
    """A YAML file the user writes besides vergeml.yaml (a runs or tune file, a
    template), as ``yaml.safe_load`` reads it; ``UsageError`` at file:line:column
    (and the line, with a caret) for a syntax error or a value YAML cannot build,
    as for vergeml.yaml. ``FileNotFoundError`` is left to the caller."""
    loader = yaml.SafeLoader(read_user_text(file))
    node = None
    try:
        node = loader.get_single_node()
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _syntax_error(file, exc) from None
    except ValueError:  # 2024-13-01, a 5000-digit integer: find the value and say where
        for scalar in _scalar_nodes(node):
            _scalar(yaml.SafeLoader(""), scalar, file)  # a fresh loader: the failed one holds state
        raise
    finally:
        loader.dispose()


def _scalar_nodes(node: yaml.Node | None) -> Iterator[yaml.ScalarNode]:
    """Every scalar under ``node``, each once (an alias may repeat a node, or hold itself)."""
    seen: set[int] = set()
    todo = [node] if node is not None else []
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            yield node
        elif isinstance(node, yaml.MappingNode):
            todo.extend(part for pair in reversed(node.value) for part in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(reversed(node.value))


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, marks: dict, file: Path) -> Any:
    marks[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = normalize_key(str(_scalar(loader, key_node, file)))
            if key in result:
                raise UsageError(
                    *_at(file, key_node.start_mark, f"duplicate key {key_node.value!r} (keep one)")
                )
            marks[(*path, key, "__key__")] = key_node.start_mark
            result[key] = _construct(loader, value_node, (*path, key), marks, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), marks, file) for i, item in enumerate(node.value)]
    return _scalar(loader, node, file)


def _scalar(loader: yaml.SafeLoader, node: yaml.Node, file: Path) -> Any:
    """A plain value; ``UsageError`` for one that YAML reads as a number or date it
    cannot build (an integer of over 4300 digits, 2024-13-01)."""
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as exc:
        text = str(node.value)
        shown = repr(text if len(text) <= 24 else f"{text[:20]}...")
        if node.tag.endswith(":int"):
            problem = f"integer {shown} ({len(text)} characters) is too large (at most {INT_MAX})"
        else:
            kind = node.tag.rpartition(":")[2]
            problem = f"{shown} reads as a {kind} but is not one ({exc}; fix it, or quote it to make it text)"
        raise UsageError(*_at(file, node.start_mark, problem)) from None


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


def _model(root: Path, tree: dict, where: _Locator) -> ModelSpec:
    name = tree.get("model", "mlp")
    try:
        return get_model(str(name), root)
    except UsageError as exc:
        where.fail(("model",), exc.message)
        raise


def _data_config(root: Path, tree: dict, where: _Locator) -> DataConfig:
    data = tree.get("data") or {}
    cache = str(data.get("cache", "auto")).lower()
    if cache not in CACHE_MODES:
        where.fail(("data", "cache"), f"unknown cache mode {cache!r} (use one of: {', '.join(CACHE_MODES)})")
    samples_dir = _inside(root, tree.get("samples_dir", "data"), ("samples_dir",), "samples-dir", where)
    source = _input_config(data.get("input") or {}, where)
    if source.file is not None:
        _inside(samples_dir, source.file, ("data", "input", "file"), "data file", where, base=root)

    from vml.preprocess import OpError, check_ops, vergeml_notes

    ops = data.get("preprocess") or []
    if not isinstance(ops, list):
        where.fail(("data", "preprocess"), "preprocess must be a list of ops, e.g. - op: standardize")
    try:
        checked = check_ops(ops, images=None if source.type == "npz" else source.type == "labeled-image")
    except OpError as exc:
        where.fail(("data", "preprocess", *exc.path), exc.message)
    val = _split(root, tree, "val_split", where)
    test = _split(root, tree, "test_split", where)
    if val.kind == test.kind == "percent" and val.amount + test.amount >= 100:
        where.fail(("test_split",), "val-split and test-split leave no training data (make them smaller)")
    return DataConfig(
        samples_dir=samples_dir,
        input=source,
        cache=cache,
        preprocess=checked,
        val_split=val,
        test_split=test,
        notes=vergeml_notes(ops),
    )


def _input_config(source: dict, where: _Locator) -> InputConfig:
    at = ("data", "input")
    kind = str(source.get("type", "csv")).lower()
    if kind in VERGEML_INPUT_TYPES:
        where.fail((*at, "type"), f"input type {kind!r} is VergeML's: vml {VERGEML_INPUT_TYPES[kind]}")
    if kind not in INPUT_TYPES:
        hint = did_you_mean(kind, INPUT_TYPES, f"use one of: {', '.join(INPUT_TYPES)}")
        where.fail((*at, "type"), f"unknown input type {kind!r} ({hint})")
    file = source.get("file")
    if kind in ("csv", "npz") and not file:
        example = "digits.csv" if kind == "csv" else "data.npz"
        where.fail(at, f"data.input.file is missing (name the {kind} file, e.g. file: {example})")
    features = source.get("features")
    if features is not None and not (
        isinstance(features, list) and features and all(isinstance(f, str) for f in features)
    ):
        where.fail((*at, "features"), "features must be a list of column names, e.g. [age, height]")
    missing = str(source.get("missing", "error")).lower()
    if missing not in MISSING_MODES:
        where.fail(
            (*at, "missing"), f"unknown missing mode {missing!r} (use one of: {', '.join(MISSING_MODES)})"
        )
    patterns = source.get("input_patterns", list(IMAGE_PATTERNS))
    if isinstance(patterns, str):
        patterns = [patterns]
    if not (isinstance(patterns, list) and patterns and all(isinstance(p, str) for p in patterns)):
        where.fail((*at, "input_patterns"), "input-patterns must be a list of globs, e.g. ['**/*.png']")
    return InputConfig(
        type=kind,
        file=str(file) if file and kind != "labeled-image" else None,
        target=str(source.get("target", "label")),
        features=tuple(features) if features else None,
        missing=missing,
        x=str(source.get("x", "x")),
        y=str(source.get("y", "y")),
        patterns=tuple(patterns),
    )


def _inside(
    directory: Path, relative: Any, path: tuple, what: str, where: _Locator, base: Path | None = None
) -> Path:
    """``directory/relative``, which must stay inside the project."""
    resolved = (directory / str(relative)).resolve()
    if not resolved.is_relative_to(base or directory):
        where.fail(path, f"{what} {relative!r} is outside the project (use a path inside it)")
    return resolved


def _split(root: Path, tree: dict, key: str, where: _Locator) -> Split:
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
        location = _inside(root, text, (key,), display_key(key), where)
        if location.exists():
            return Split("path", path=location)
        where.fail(
            (key,),
            f"invalid {display_key(key)} {value!r}: no such file or directory in the project (use a percentage like 10%, a count like 150, or an existing path)",
        )
    where.fail(
        (key,),
        f"invalid {display_key(key)} {value!r} (use a percentage like 10%, a count like 150, "
        "or a directory or file inside the project)",
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


def monitor_direction(monitor: str) -> str:
    """``minimize`` for a loss, ``maximize`` for anything else (an accuracy)."""
    return "minimize" if monitor.endswith("loss") else "maximize"


def resolve_task(hparams: dict[str, Any]) -> tuple[str, str]:
    """``(task, monitor)`` for a run: the loss decides classification or regression,
    and ``monitor: auto`` picks val_acc or val_loss to match."""
    task = "regression" if hparams["loss"] in REGRESSION_LOSSES else "classification"
    monitor = hparams["monitor"]
    if monitor == "auto":
        monitor = "val_acc" if task == "classification" else "val_loss"
    if task == "regression" and monitor == "val_acc":
        raise UsageError(
            f"monitor val_acc needs a classification loss, but loss is {hparams['loss']} "
            "(use --monitor=val_loss, or --loss=cross-entropy)"
        )
    return task, monitor
