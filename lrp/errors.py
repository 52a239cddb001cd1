"""Errors that end a command with a one-line message and a documented exit code."""


class LrpError(Exception):
    """Bad data or a failed step: exit 1, message names the file, image id or key at fault."""

    exit_code = 1


class UsageError(LrpError):
    """The command line itself is wrong: exit 2."""

    exit_code = 2


class NotImplementedYet(UsageError):
    def __init__(self, what: str):
        super().__init__(f"{what} is not implemented yet")


class PartialFailure(LrpError):
    """`--keep-going` ended with failed images: `doc` is the document to write anyway (without
    them, or as `consequence` says). Raised by lrp.failures.ImageFailures.finish."""

    def __init__(self, failures: list[str], total: int, doc: dict, consequence: str = "the document leaves them out"):
        super().__init__(f"{len(failures)} of {total} images failed (listed above); {consequence}")
        self.failures = failures
        self.doc = doc


class BelowBar(LrpError):
    """`evaluate --fail-under` found a metric below its bar: exit 3."""

    exit_code = 3
