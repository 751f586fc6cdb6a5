"""Maintenance: pauses (`failover pause`) and windows (`maintenance:` in a site's config)
during which a site is probed and recorded but nothing is declared down, switched or
notified, and the time is excluded from uptime. window.py decides (pure), journal.py keeps
pauses and the periods that were spent in maintenance, state.py applies it to rounds."""
