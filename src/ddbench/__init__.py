"""ddbench: a reproducible benchmark workflow for dataset distillation and coreset selection."""

__version__ = "0.1.0"
