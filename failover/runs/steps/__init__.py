"""The steps of a run: common.py (every run), migrate.py (provision, wait_ssh, ensure_restic)."""
