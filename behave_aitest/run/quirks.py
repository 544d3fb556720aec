"""Work-arounds for behave 1.3.3's own quirks, shared by the runner and the formatters."""

from __future__ import annotations

from typing import Any


def one_catalog(config: Any) -> None:
    """Drop the second "steps.catalog" behave 1.3.3 adds when [tool.behave] sets a format.

    ``--steps-catalog`` appends "steps.catalog" to the configured format list in place; that
    list is also behave's record of the configured formats, so it then looks as if no format
    was given on the command line and appends its default format, "steps.catalog", again:
    the catalogue printed twice. The report formatters are built while behave walks that
    list, before the two appended entries, so removing the repeat here is still in time.
    """
    formats = getattr(config, "format", None)
    if getattr(config, "steps_catalog", False) and isinstance(formats, list):
        while formats.count("steps.catalog") > 1:
            del formats[len(formats) - 1 - formats[::-1].index("steps.catalog")]
