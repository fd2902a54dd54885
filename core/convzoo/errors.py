"""The one exception type convzoo raises for bad input: its message is a single line for the user."""


class ConvzooError(Exception):
    """Bad input or configuration; the message names the bad value and what is allowed."""
