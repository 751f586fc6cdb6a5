"""The config: load.py (find, parse with line numbers, validate: LoadedConfig), loader.py
(YAML with line numbers), models.py and one module per feature section (dns.py, backup.py,
compute.py), types.py (durations, secrets), schema.py (the JSON schema), edit.py (adding an
endpoint to the user's file, comments kept)."""
