"""The three ways a command ends badly, each with its own exit status (docs/architecture.md)."""


class UserError(Exception):
    """A mistake the user can fix; the CLI prints it in one line and exits 2."""


class StepFailed(Exception):
    """A step failed on something other than a user mistake; the CLI prints one line and exits 1."""


class VerificationFailed(StepFailed):
    """A back end disagrees with the integer reference (export, C simulation, RTL, scoreboard).

    Raised after the step wrote its report (verify.json, csim.json, ...): the run keeps the
    failing result for debugging, but the step is never recorded as up to date."""


def verification_failed(check: str, mismatched: int, samples: int, first: "list[int]", report: object) -> VerificationFailed:
    """The one line of a failed verification: how many of how many samples, the first few, where the report is."""
    shown = ", ".join(str(i) for i in first[:5]) + (", ..." if mismatched > 5 else "")
    return VerificationFailed(f"{check}: {mismatched} of {samples} samples mismatch the integer reference "
                              f"(first: {shown or '-'}); report {report}")
