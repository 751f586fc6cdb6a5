"""Watching: health.py (pure state machine; network_ok), round.py (one probe round,
recorded), daemon.py (tick for cron, the Agent), heartbeat.py, probes/ (the probe engine:
wire.py and result.py pure; http, tcp, icmp, dns probes; engine.py runs them)."""
