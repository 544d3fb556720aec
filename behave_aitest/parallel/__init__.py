"""``behave -j N``: conversations run in worker processes (pytest-xdist's split).

``runner`` is the parent's side (``ParallelRunner``: plan, start the workers, schedule, stop);
``replay`` its last part (every outcome put on the parent's behave model and shown to behave's
formatters and reporters); ``processes`` the worker processes' start and stop; ``units`` are
the units of work and their order; ``worker`` is a worker process; ``outcomes`` is what a
worker sends back.

May import every lower package, ``report`` included. Never ``cli``. ``behave_aitest.parallel:ParallelRunner``
is the name behave's ``runner`` setting uses.
"""

from .runner import ParallelRunner

__all__ = ["ParallelRunner"]

# The public name (behave prints it: "USING RUNNER: behave_aitest.parallel:ParallelRunner"), as httpx does.
ParallelRunner.__module__ = __name__
