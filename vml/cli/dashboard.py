"""``ml dashboard``: the project's runs, live, full screen."""

from __future__ import annotations

from vml import api


def dashboard() -> None:
    """Watch, filter, sort and cancel the project's runs in a live full-screen table."""
    from vml.tui.app import Dashboard  # textual loads only for this command

    Dashboard(api.Project()).run()
