"""``python -m vml`` runs the ``ml`` command."""

from vml.cli import main

main()
