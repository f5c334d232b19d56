"""The model package's error."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: wrong format, inconsistent, or not matching the data."""


class CheckpointWarning(UserWarning):
    """A checkpoint that loads but cannot be fully checked (no integrity hash)."""
