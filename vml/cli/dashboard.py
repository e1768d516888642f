"""``ml dashboard``: the project's runs, live, full screen."""

from __future__ import annotations

from vml import api


def dashboard() -> None:
    """Watch, compare, start and cancel the project's runs in a live full-screen dashboard."""
    from vml.tui.app import Dashboard  # textual loads only for this command

    Dashboard(api.Project()).run()
