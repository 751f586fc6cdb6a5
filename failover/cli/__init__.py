"""The command line: app.py (the typer app, errors -> exit codes), context.py (global
options, load(), open_store(), emit_json()), confirm.py (plan -> --dry-run / --yes ->
execute), and one module per command group. Commands read options, call the core, render."""
