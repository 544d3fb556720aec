"""The ``behave-aitest`` command: ``init``, ``doctor``, ``report``, ``cassettes``, ``docs``.

``app`` parses the command line (and holds the report commands); ``doctor`` checks a project through the run's own checks;
``scaffold`` is ``init``; ``docs`` prints the pages of docs/ the messages point to. The top of the house: it may import any package, nothing imports it.
"""

from .app import main

__all__ = ["main"]
