"""The errors a user can act on: each names the file, key or step and what is wrong.

A job that ends with one of these prints a single `ERROR: <message>` line to its log (see
`runinfo.run_job`); anything else is a bug and keeps its traceback. No heavy imports here:
the Snakefile, the CLI and every job import this module.
"""

from __future__ import annotations


class DdbenchError(ValueError):
    """Base class of every error that explains a bad input or a refused result."""


class ConfigError(DdbenchError):
    """A configuration problem; the message names the key path."""


class DataFileError(DdbenchError):
    """A file on disk is missing, corrupt, or not what the reader expects (its path says otherwise)."""


class SourceError(DdbenchError):
    """A configured dataset source is missing, incomplete, unsafe or not in the expected format."""


class TrainingDivergedError(DdbenchError):
    """Training produced a non-finite loss: the result would be meaningless, so nothing is written."""


def check_finite_loss(value: float, *, what: str, step: int, hint: str) -> None:
    """Raise TrainingDivergedError when an optimisation loop's loss `value` is NaN or infinite."""
    import math

    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"{what} diverged: loss is {value} at step {step}; nothing is written; {hint}"
        )
