"""What every job writes first to its log: where and as which scheduler job it ran."""

from __future__ import annotations

import os
import platform
import sys

from . import __version__


def job_context() -> dict[str, str | None]:
    """Host, Python, ddbench version and the SLURM job id (None outside SLURM)."""
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "ddbench": __version__,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def log_job_context(stream=None) -> None:
    """One line `ddbench job: host=… slurm_job_id=…` on stderr (the rule's log)."""
    ctx = job_context()
    print("ddbench job: " + " ".join(f"{k}={v}" for k, v in ctx.items()), file=stream or sys.stderr)


def run_job(fn, *args, **kwargs):
    """Call a stage function; a known input problem ends the job with one clear log line.

    Data, source and config errors name the file or key and what is wrong; a traceback would
    only bury that line, so the job prints `ERROR: <message>` and exits with status 1.
    Anything unexpected still raises with its traceback.
    """
    from .errors import DdbenchError

    try:
        return fn(*args, **kwargs)
    except DdbenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(1)
