"""``python -m w2v2cli`` runs the ``w2v2`` command."""

from .cli import main

main()
