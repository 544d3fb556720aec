"""The ``behave-aitest`` command: ``init``, ``doctor``, ``report``, ``cassettes``.

``main`` parses the command line; ``doctor`` checks a project through the run's own checks;
``scaffold`` is ``init``. The top of the house: it may import any package, nothing imports it.
"""

from .main import main

__all__ = ["main"]
