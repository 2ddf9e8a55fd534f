"""An app module whose import fails: ferrocorn must stop with exit code 4."""

import does_not_exist_ferrocorn_test  # noqa: F401

app = None
