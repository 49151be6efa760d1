"""``python -m trailsight`` runs the CLI."""

from trailsight.cli.main import main

main()
