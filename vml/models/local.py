"""The project's own model: ``model: ./net.py:Net`` in vergeml.yaml.

The file is read with ``ast`` to find the class and its constructor's arguments, so
``ml help`` and ``ml list`` never run (or import torch for) the user's code.
"""

from __future__ import annotations

import ast
from pathlib import Path

from vml.errors import UsageError
from vml.models import ModelSpec
from vml.models.declare import DeclarationError, from_annotation_text


def spec_from_file(reference: str, root: Path) -> ModelSpec:
    """The spec for ``path.py:Name`` relative to the project ``root``."""
    path_text, _, attribute = reference.rpartition(":")
    path = (root / path_text).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UsageError(f"model file {path_text!r} is outside the project (put it inside the project)")
    if not path.is_file():
        raise UsageError(f"model file {path_text!r} not found (create it, or fix model: in vergeml.yaml)")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except UnicodeDecodeError:
        raise UsageError(
            f"model file {path_text!r} is not UTF-8 text (replace it with Python source saved as UTF-8)"
        ) from None
    except SyntaxError as exc:
        raise UsageError(f"{path_text}:{exc.lineno}: syntax error: {exc.msg} (fix the model file)") from None
    found = next(
        (n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == attribute), None
    )
    if found is None:
        names = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
        raise UsageError(
            f"{path_text} has no class or function {attribute!r} (it has: {', '.join(names) or 'none'})"
        )
    init = found
    if isinstance(found, ast.ClassDef):
        init = next((n for n in found.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    owner = f"{attribute} in {path_text}"
    try:
        params = _arguments(init, owner) if init is not None else ()
    except DeclarationError as exc:
        raise UsageError(f"{exc} (fix the model file)") from None
    summary = (ast.get_docstring(found) or f"{attribute} from {path_text}").strip().splitlines()[0]
    return ModelSpec(
        name=reference, summary=summary, hyperparameters=params, factory=f"{path}:{attribute}", source=path
    )


def _arguments(function: ast.FunctionDef, owner: str) -> tuple:
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True)) + list(
        zip(args.kwonlyargs, args.kw_defaults, strict=True)
    )
    params = []
    for arg, default in pairs:
        if arg.arg in ("self", "input_shape", "num_classes"):
            continue
        try:
            value = ast.literal_eval(default) if default is not None else None
        except ValueError:
            raise DeclarationError(f"the default of {arg.arg!r} in {owner} must be a literal value") from None
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else None
        params.append(from_annotation_text(arg.arg, annotation, value, owner))
    return tuple(params)
