"""The model package's error."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: wrong format, inconsistent, or not matching the data."""
