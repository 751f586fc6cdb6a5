"""Backups of a site: run a backup set, apply retention, prove it restores, know how fresh it is.

Pure: schedule (due, health, freshness), parts (what a set is made of, snapshot tags),
restic_parse (restic's output and arguments). I/O: restic (the one place restic runs),
journal (the backup tables), run, verify, restore, hook (the agent's stage and status).
This file imports nothing, so that importing one module of the area stays cheap.
"""
