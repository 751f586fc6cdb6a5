"""`failover doctor`: everything a failover will need, checked now, one line each with a
hint. report.py (pure) holds the findings and their verdict; checks.py does the I/O."""
