"""Hyperparameters declared by a model's constructor: every argument with a default
(other than ``input_shape`` and ``num_classes``) becomes one, typed by its hint
(``int``, ``float``, ``str``, ``bool`` or ``Literal[...]``) or else by its default."""

from __future__ import annotations

import ast
import inspect
from typing import Any, Literal, get_args, get_origin

from vml.params import HyperParam, normalize_key

TYPES = {"int": int, "float": float, "str": str, "bool": bool}


class DeclarationError(ValueError):
    """A constructor argument that cannot become a hyperparameter."""


def from_annotation_text(name: str, annotation: str | None, default: Any, owner: str) -> HyperParam:
    """A hyperparameter from an argument whose hint is source text (or absent)."""
    choices: tuple[str, ...] = ()
    kind = None
    if annotation:
        node = ast.parse(annotation, mode="eval").body
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).split(".")[-1] == "Literal":
            values = ast.literal_eval(node.slice)
            choices = tuple(str(v) for v in (values if isinstance(values, tuple) else (values,)))
            kind = str
        else:
            kind = TYPES.get(ast.unparse(node).split(".")[-1])
    return _param(name, kind, default, choices, owner)


def from_signature(factory: Any, owner: str) -> tuple[HyperParam, ...]:
    """Hyperparameters of an imported class or function (for installed plugins)."""
    params = []
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.name in ("self", "input_shape", "num_classes") or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        ):
            continue
        hint = parameter.annotation
        if get_origin(hint) is Literal:
            params.append(
                _param(parameter.name, str, parameter.default, tuple(map(str, get_args(hint))), owner)
            )
        elif isinstance(hint, str):
            params.append(from_annotation_text(parameter.name, hint, _default(parameter), owner))
        else:
            kind = hint if hint in TYPES.values() else None
            params.append(_param(parameter.name, kind, _default(parameter), (), owner))
    return tuple(params)


def _default(parameter: inspect.Parameter) -> Any:
    return None if parameter.default is parameter.empty else parameter.default


def _param(name: str, kind: type | None, default: Any, choices: tuple[str, ...], owner: str) -> HyperParam:
    if default is None:
        raise DeclarationError(
            f"argument {name!r} of {owner} needs a default value (it becomes a hyperparameter)"
        )
    kind = kind or type(default)
    if kind not in TYPES.values():
        raise DeclarationError(
            f"argument {name!r} of {owner} has a default of type {type(default).__name__}; "
            "use int, float, str, bool or Literal[...]"
        )
    if choices and str(default) not in choices:
        raise DeclarationError(
            f"default {default!r} of {name!r} in {owner} is not one of {', '.join(choices)}"
        )
    return HyperParam(normalize_key(name), kind, default, f"Argument {name} of {owner}.", choices=choices)
