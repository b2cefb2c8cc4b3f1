"""`python -m restore` runs the command line."""

from restore.cli import main

main()
