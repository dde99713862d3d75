"""User-facing errors: raised for bad input, printed as one line by the CLIs (no traceback)."""


class KollmError(Exception):
    """A mistake the user can fix (bad path, bad override, malformed input)."""
