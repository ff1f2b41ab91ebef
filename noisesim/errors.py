"""User-facing errors: one line naming the problem and the fix; the CLI turns them into exit 2."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class UserError(ValueError):
    """Bad input from the user (file, name, number). Message is a single line."""


def one_line(message: object, limit: int = 2000) -> str:
    """``message`` as one printable line: control characters escaped, cut to ``limit`` characters."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(message).strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"
