"""Watching: health.py (pure state machine), round.py (one probe round, recorded),
daemon.py (tick for cron, the Agent), heartbeat.py, probes/ (the probe engine)."""
