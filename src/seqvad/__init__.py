"""seqvad: video anomaly detection by sequentially learning multiple pretext tasks."""

__version__ = "0.1.0"
