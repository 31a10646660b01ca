"""`python -m ddbench`: the `ddbench` command."""

from ddbench.cli import main

main()
