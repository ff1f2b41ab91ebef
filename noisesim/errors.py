"""User-facing errors: one line naming the problem and the fix; the CLI turns them into exit 2."""


class UserError(ValueError):
    """Bad input from the user (file, name, number). Message is a single line."""
