"""``python -m worker`` is the ``catentio-webhooks`` command."""

from worker.cli import main

main(prog_name="catentio-webhooks")
