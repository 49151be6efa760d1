"""The ``trailsight`` command line (typer); one module per command group."""
