"""`python -m nimbus` is the `nimbus` command."""

from nimbus.cli import main

main()
