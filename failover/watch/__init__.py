"""Watching the sites: the probes (probes/), and, as the layout settles, the health state
machine and the agent that runs a probe round per interval."""
