"""What every job does first: log to the rule's log, say where it runs and which code it runs.

Every script under scripts/ starts with the same lines (Snakemake's `script:` runs each in its
own Python process):

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
    from ddbench.runinfo import run_job, start_job

    smk = start_job(snakemake)

The path insert makes the job import the workflow's own `src/ddbench` even when another copy
of ddbench is installed or on PYTHONPATH; `start_job` checks that it did.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import ddbench
from ddbench import __version__


def package_dir() -> Path:
    """The folder of the ddbench package this process imported."""
    return Path(ddbench.__file__).resolve().parent


def workflow_package_dir(scriptdir: str | os.PathLike | None) -> Path | None:
    """`<workflow>/src/ddbench` for a script folder `<workflow>/scripts` (None when remote)."""
    if scriptdir is None or "://" in str(scriptdir):
        return None
    return (Path(scriptdir).resolve().parent / "src" / "ddbench").resolve()


def job_context() -> dict[str, str | None]:
    """Host, Python, ddbench version, SLURM job id (None outside SLURM) and the package folder."""
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "ddbench": __version__,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "package": str(package_dir()),  # last: a path may contain spaces
    }


def log_job_context(stream=None) -> None:
    """One line `ddbench job: host=… slurm_job_id=… package=…` on stderr (the rule's log)."""
    ctx = job_context()
    print("ddbench job: " + " ".join(f"{k}={v}" for k, v in ctx.items()), file=stream or sys.stderr)


def start_job(smk):
    """Begin a rule script: stderr to the rule's log, the job-context line, the package check.

    A job that imported a ddbench other than the one under the workflow's `src/` (the code
    that built the DAG) ends here with one `ERROR:` line naming both folders and status 1.
    Returns `smk` (the script's `snakemake` object) so that scripts refer to it by one name.
    """
    if smk.log:
        sys.stderr = open(smk.log[0], "w", buffering=1)  # line-buffered: a killed job keeps its log
    log_job_context()
    expected = workflow_package_dir(getattr(smk, "scriptdir", None))
    if expected is None:
        print("ddbench job: remote workflow scripts, package folder not checked", file=sys.stderr)
    elif package_dir() != expected:
        print(
            f"ERROR: this job imported ddbench from {package_dir()}, but the workflow's own "
            f"package is {expected}; the job would not run the code that planned it "
            "(another ddbench is imported first: check PYTHONPATH, .pth files and the job's env)",
            file=sys.stderr,
        )
        sys.exit(1)
    return smk


def run_job(fn, *args, **kwargs):
    """Call a stage function; a known input problem ends the job with one clear log line.

    Data, source and config errors name the file or key and what is wrong; a traceback would
    only bury that line, so the job prints `ERROR: <message>` and exits with status 1.
    Anything unexpected still raises with its traceback.
    """
    from ddbench.errors import DdbenchError

    try:
        return fn(*args, **kwargs)
    except DdbenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(1)
