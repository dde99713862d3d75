"""User-facing errors: raised for bad input, printed as one line by the CLIs (no traceback)."""


class KollmError(Exception):
    """A mistake the user can fix (bad path, bad override, malformed input)."""


class StoppedEarly(KollmError):
    """A run stopped on request (SIGTERM/SIGUSR1) after saving a checkpoint; rerunning resumes it."""

    # EX_TEMPFAIL, "try again": non-zero, so NeMo Run's sbatch script requeues the job (run.requeues)
    # and the requeued job resumes from the checkpoint; 0 would mark the unfinished run as done
    exit_code = 75
