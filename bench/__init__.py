"""Benchmarks of behave-aitest against the baseline that needs no plugin (issue 7).

Run ``python -m bench`` (``--help`` for the options). Every benchmark is a module with
``ITEM``, ``TITLE`` and ``run(bench) -> list[Row]`` (see :mod:`bench.common`), listed in
:data:`bench.__main__.MODULES`; adding a measurement is adding a module there.
"""
