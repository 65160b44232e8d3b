"""The ``lmhub`` command line: one Typer app, a module per subcommand group."""
