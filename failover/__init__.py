"""failover: survive your hosting provider."""

__version__ = "0.1.0"
