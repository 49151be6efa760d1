"""``python -m trailsight`` runs the CLI."""

from trailsight.cli.main import main

if __name__ == "__main__":  # worker processes import this module too; only the CLI runs it
    main()
