class UserError(Exception):
    """A mistake the user can fix; the CLI prints it in one line and exits 2."""
