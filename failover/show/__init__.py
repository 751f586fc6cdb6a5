"""What people read: status.py (`failover status`), report.py (timelines and uptime)."""
