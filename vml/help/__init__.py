"""Help topics and the glossary, as markdown text. Static topics are files in
``topics/``; ``train``, ``models`` and ``preprocess`` are built from the declarations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from vml.errors import UsageError, did_you_mean
from vml.models import ModelSpec, available_models
from vml.params import TRAINING_PARAMS, HyperParam, display_key

if TYPE_CHECKING:
    from vml.preprocess import Op

GENERATED_TOPICS = {
    "glossary": "Definitions of the terms used in training and in vml.",
    "train": "The hyperparameters `ml train` accepts, with types, defaults and ranges.",
    "models": "The models you can train.",
    "preprocess": "The preprocessing ops for `data: preprocess:`.",
}


@dataclass(frozen=True)
class Term:
    """One glossary entry."""

    name: str
    aliases: tuple[str, ...]
    text: str

    def markdown(self) -> str:
        also = f"\n*Also: {', '.join(self.aliases)}*\n" if self.aliases else ""
        return f"# {self.name}\n{also}\n{self.text}\n"


def lookup_key(text: str) -> str:
    """How topics and terms are matched: case, hyphens, underscores and spaces ignored."""
    return re.sub(r"[-_\s]+", " ", text.strip().lower())


def _read(name: str) -> str:
    return resources.files("vml.help").joinpath(name).read_text(encoding="utf-8")


def glossary() -> list[Term]:
    """The glossary's terms, in file order."""
    terms = []
    for block in _read("glossary.md").split("\n## ")[1:]:
        heading, _, body = block.partition("\n")
        aliases: tuple[str, ...] = ()
        if body.startswith("Also:"):
            line, _, body = body.partition("\n")
            aliases = tuple(a.strip() for a in line[5:].split(",") if a.strip())
        # A blank line keeps "In vml:" its own paragraph when rendered.
        terms.append(Term(heading.strip(), aliases, body.strip().replace("\nIn vml:", "\n\nIn vml:")))
    return terms


def static_topics() -> dict[str, tuple[str, str]]:
    """Topic files: name -> (summary, markdown)."""
    topics = {}
    for entry in resources.files("vml.help").joinpath("topics").iterdir():
        if entry.name.endswith(".md"):
            text = entry.read_text(encoding="utf-8")
            lines = text.splitlines()
            summary = lines[2] if len(lines) > 2 else ""
            topics[entry.name[:-3]] = (summary, text)
    return dict(sorted(topics.items()))


def topic_list() -> str:
    """The ``ml help`` page: every topic with its one-line summary."""
    rows = {**GENERATED_TOPICS, **{k: v[0] for k, v in static_topics().items()}}
    lines = ["# Help topics", "", "Run `ml help TOPIC` for one of these:", ""]
    lines += [f"- **{name}**: {summary}" for name, summary in sorted(rows.items())]
    lines += [
        "",
        "`ml help TERM` explains a glossary term, e.g. `ml help learning rate`.",
        "`ml COMMAND --help` shows a command's options.",
    ]
    return "\n".join(lines) + "\n"


def glossary_page() -> str:
    return "\n".join(["# Glossary", ""] + [f"## {t.name}\n\n{t.text}\n" for t in glossary()])


def _param_table(params: tuple[HyperParam, ...], file_values: dict[str, object]) -> list[str]:
    if not params:
        return ["No hyperparameters of its own: it trains with the ones in `ml help train`."]
    rows = ["| hyperparameter | type | default | range | help |", "|---|---|---|---|---|"]
    for p in params:
        default = f"{p.default}"
        if p.name in file_values:
            default += f" (vergeml.yaml: {file_values[p.name]})"
        rows.append(
            f"| --{display_key(p.name)} | {p.type_name} | {default} | {p.describe_range()} | {p.help} |"
        )
    return rows


def train_page(model: ModelSpec, file_values: dict[str, object]) -> str:
    """``ml help train``: the training loop's and the model's hyperparameters."""
    lines = [
        f"# ml train: hyperparameters (model {model.name})",
        "",
        "Set them on the command line (`--learning-rate=0.01`, `--learning_rate 0.01`) or under "
        "`train:` in vergeml.yaml. Command line beats vergeml.yaml beats the defaults below.",
        "",
        "## Training",
        "",
        *_param_table(TRAINING_PARAMS, file_values),
        "",
        f"## Model {model.name}",
        "",
        *_param_table(model.hyperparameters, file_values),
    ]
    return "\n".join(lines) + "\n"


def models_page() -> str:
    lines = ["# Models", "", "Pick one with `model:` in vergeml.yaml.", ""]
    lines += [f"- **{m.name}**: {m.summary} (`ml help {m.name}`)" for m in available_models().values()]
    lines += [
        "",
        "Your own network: `model: ./net.py:Net` names an `nn.Module` class (or a function) in the",
        "project; its constructor's arguments with defaults become hyperparameters, typed by their",
        "hints (int, float, str, bool, Literal[...]), and `input_shape` and `num_classes` are",
        "filled in from the data. Installed packages add models under the entry point group",
        "`vml.models`. See docs/models.md.",
    ]
    return "\n".join(lines) + "\n"


def model_page(model: ModelSpec) -> str:
    return (
        "\n".join([f"# Model {model.name}", "", model.summary, "", *_param_table(model.hyperparameters, {})])
        + "\n"
    )


def _op_section(op: Op, level: str = "##") -> list[str]:
    from vml.preprocess import ImageOp

    if isinstance(op, ImageOp):
        kind = "image op, training split only by default" if op.augmentation else "image op"
    else:
        kind = "scaler, fitted on the training split"
    lines = [f"{level} {op.name}", "", f"{op.help} ({kind})", ""]
    lines += ["| option | type | default | range | help |", "|---|---|---|---|---|"]
    for o in op.options:
        name = " or ".join(display_key(n) for n in (o.name, *o.aliases))
        lines.append(f"| {name} | {o.type_name} | {o.shown_default()} | {o.describe_range()} | {o.help} |")
    if op.vergeml:
        lines += ["", f"Differs from VergeML: {op.vergeml}"]
    return [*lines, ""]


def op_page(name: str) -> str | None:
    """``ml help <op>``: one preprocessing op."""
    from vml.preprocess import OPS

    op = OPS.get(name)
    return "\n".join(_op_section(op, "#")) if op else None


def preprocess_page() -> str:
    from vml.preprocess import OPS

    lines = [
        "# Preprocessing ops",
        "",
        "List them under `data: preprocess:` in vergeml.yaml. Image ops run first, on each "
        "image in the order listed; then the scalers, fitted on the training split and "
        "applied to every split. Every op takes `apply`, the splits it touches (as in VergeML; "
        "but vml's random ops touch only the training split unless `apply` names others). "
        "`ml help OP` shows one.",
        "",
    ]
    for op in OPS.values():
        lines += _op_section(op)
    return "\n".join(lines)


# VergeML's help topics (vergeml/commands/help.py) and where vml has them.
VERGEML_TOPICS = {
    "preprocessing": "preprocess",
    "input": "config",
    "output": "config",
    "data": "config",
    "device": "config",
    "labeled image": "config",
    "csv": "config",
    "npz": "config",
    **{
        lookup_key(option): "options"
        for option in ("samples-dir", "trainings-dir", "cache-dir", "project-dir")
    },
}


def find(query: str) -> tuple[str, str] | None:
    """A static topic, model or glossary term matching ``query``: (kind, markdown)."""
    key = lookup_key(query)
    for name, (_, text) in static_topics().items():
        if lookup_key(name) == key:
            return "topic", text
    for model in available_models().values():
        if lookup_key(model.name) == key:
            return "model", model_page(model)
    page = op_page(key.replace(" ", "-"))
    if page:
        return "op", page
    for term in glossary():
        if key in {lookup_key(term.name), *map(lookup_key, term.aliases)}:
            return "term", term.markdown()
    return None


def not_found(query: str) -> UsageError:
    """The error for an unknown topic or term, with the closest matches."""
    from vml.preprocess import OPS

    names = list(GENERATED_TOPICS) + list(static_topics()) + list(available_models()) + list(OPS)
    for term in glossary():
        names += [term.name.lower(), *(a.lower() for a in term.aliases)]
    unique = list(dict.fromkeys(lookup_key(n) for n in names))
    hint = did_you_mean(lookup_key(query), unique, "ml help lists the topics", show=repr, n=3)
    return UsageError(f"no help topic or glossary term {query!r} ({hint})")
