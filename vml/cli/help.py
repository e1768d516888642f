"""``ml help``: topics, the glossary, and the project's hyperparameters."""

from __future__ import annotations

import random

import typer

from vml import help as topics
from vml.cli.render import print_markdown
from vml.errors import UsageError
from vml.names import generate_name


def help_topic(
    topic: list[str] | None = typer.Argument(
        None, metavar="[TOPIC]...", help="A topic or glossary term, e.g. glossary, train, learning rate."
    ),
    show_all: bool = typer.Option(False, "--all", "-a", help="List the topics (VergeML's ml help -a)."),
) -> None:
    """Show help topics and glossary terms."""
    if not topic or show_all:
        print_markdown(topics.topic_list())
        return
    query = " ".join(topic)
    key = topics.lookup_key(query)
    key = topics.VERGEML_TOPICS.get(key, key)
    command = _command(key.replace(" ", "-").split(":")[0])  # VergeML's ml help list, help plot:roc
    if key == "random robot":  # VergeML's easter egg
        print(random_robot())
    elif key == "train":
        print_markdown(_train_page())
    elif key == "glossary":
        print_markdown(topics.glossary_page())
    elif key == "models":
        print_markdown(topics.models_page())
    elif key == "preprocess":
        print_markdown(topics.preprocess_page())
    elif (found := topics.find(key)) is not None:
        print_markdown(found[1])
    elif command is not None:
        print(command, end="")
    else:
        raise topics.not_found(query)


def _command(name: str) -> str | None:
    """``ml NAME --help``'s text, if NAME is one of ml's commands."""
    import typer.main

    from vml.cli import app

    group = typer.main.get_command(app)
    with group.context_class(group, info_name="ml") as parent:
        found = group.get_command(parent, name)
        if found is None:
            return None
        with found.context_class(found, info_name=name, parent=parent) as context:
            return found.get_help(context) + "\n"


def _train_page() -> str:
    """The project's model and its vergeml.yaml values, or the default model outside a project."""
    from vml import api
    from vml.models import get_model

    try:
        project = api.Project()
    except UsageError:
        return topics.train_page(get_model("mlp"), {})
    config = project.config
    return topics.train_page(config.model, {k: v.value for k, v in config.file_hyperparameters.items()})


# A robot is stacked from one of each part, every part six columns wide.
_ANTENNAS = ("  \\/  ", "  ||  ", "  oo  ", " _||_ ", "  ^^  ", "  ..  ", "")
_HEADS = ("[o  o]", "(O  O)", "{^  ^}", "|@  @|", "<-  ->", "[*  *]", "(.  .)", "[=  =]")
_BODIES = ("/|[]|\\", "-|==|-", "o|##|o", "=|::|=", "d|<>|b", "~|$$|~")
_FEET = (" d  b ", " |  | ", " o  o ", " L  J ", " /  \\ ", " ^  ^ ")
_SAYINGS = (
    "{name} says: 'hello, human!'",
    "{name} is ready to descend some gradients.",
    "{name} would like a bigger batch size, please.",
    "{name} promises never to overfit. Much.",
    "{name} has been assembled and waits for its first epoch.",
    "let's give a warm welcome to {name}!",
    "{name} dreams of a validation accuracy of 1.0.",
    "{name} was told there would be GPUs.",
    "{name} thinks your learning rate looks lovely today.",
    "{name} will remember every sample. Well, most of them.",
)


def random_robot(rng: random.Random | None = None) -> str:
    """VergeML's ``ml help random robot``: a robot with a run-style name and a line it says."""
    rng = rng or random.Random()
    name = "@" + generate_name(rng=rng)
    parts = [rng.choice(_ANTENNAS), rng.choice(_HEADS), rng.choice(_BODIES), rng.choice(_FEET)]
    parts[-1] += "     - " + rng.choice(_SAYINGS).format(name=name)
    return "\n" + "\n".join(("  " + part).rstrip() for part in parts if part) + "\n"
