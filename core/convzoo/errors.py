"""The exception types convzoo raises for bad input: the message is a single line for the user."""


class ConvzooError(Exception):
    """Bad input or configuration; the message names the bad value and what is allowed."""


def one_line(error: BaseException) -> str:
    """Any error as ``Type: the first line of its message`` (at most 300 characters of it)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


class OptionError(ConvzooError):
    """What a plugin's builder raises for an option value it cannot take: the command line shows the message as a
    one-line ``Error:``, so name the value and what is allowed."""
