"""Errors that the CLI turns into a one-line message and a non-zero exit."""


class SeqvadError(Exception):
    """Base of every error seqvad raises on bad input or configuration."""


class DataError(SeqvadError):
    """A video, frame folder, label file or dataset root is missing or inconsistent."""


class ConfigError(SeqvadError):
    """A configuration is invalid or does not match a run being resumed."""
