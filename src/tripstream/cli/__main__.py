"""`python -m tripstream.cli`."""

from tripstream.cli import main

main()
