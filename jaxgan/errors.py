"""The errors jaxgan raises for a user's mistake or a fault it can name, each with a one-line
message that says what is wrong and what is allowed. Only the command-line entry points map them
to exit codes (2 for bad input, 1 for a fault)."""


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message names the setting (as its flag)."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be saved, or cannot be restored into the requested run."""


class DataError(ValueError):
    """A dataset cannot be read as asked (unknown form, too small, unreadable)."""
