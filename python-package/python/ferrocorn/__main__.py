"""``python -m ferrocorn``: the ``ferrocorn`` command."""

from ferrocorn import main

main()
