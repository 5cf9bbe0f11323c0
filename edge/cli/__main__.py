"""``python -m edge.cli``: the ``ser`` command."""

from edge.cli import main

main(prog_name="ser")
