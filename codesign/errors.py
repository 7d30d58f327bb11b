class UserError(Exception):
    """A mistake the user can fix; the CLI prints it in one line and exits 2."""


class StepFailed(Exception):
    """A flow step failed on something other than a user mistake; the CLI names the step and exits 1."""
