"""``ml help``: topics, the glossary, and the project's hyperparameters."""

from __future__ import annotations

import typer

from vml import help as topics
from vml.cli.render import print_markdown
from vml.errors import UsageError


def help_topic(
    topic: list[str] | None = typer.Argument(
        None, metavar="[TOPIC]...", help="A topic or glossary term, e.g. glossary, train, learning rate."
    ),
) -> None:
    """Show help topics and glossary terms."""
    if not topic:
        print_markdown(topics.topic_list())
        return
    query = " ".join(topic)
    key = topics.lookup_key(query)
    if key == "train":
        print_markdown(_train_page())
    elif key == "glossary":
        print_markdown(topics.glossary_page())
    elif key == "models":
        print_markdown(topics.models_page())
    elif key == "preprocess":
        print_markdown(topics.preprocess_page())
    else:
        found = topics.find(query)
        if found is None:
            raise topics.not_found(query)
        print_markdown(found[1])


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
