"""The probe engine: one async probe per check type (http/https, tcp, icmp, dns) and a
round runner that runs them all concurrently, each under its own deadline.

wire.py (HTTP/1.1 and ICMP wire formats) and result.py (ProbeResult) are pure; engine.py
(`run_probes`, `probe_all`, `probe`) is the entry point; http.py, tcp.py, icmp.py and dns.py
hold the probes, common.py what they share (progress state, error descriptions).
"""
