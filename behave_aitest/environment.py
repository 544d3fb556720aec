"""Ready-made hooks: ``from behave_aitest.environment import *`` is a whole features/environment.py.

Projects with hooks of their own call the functions of :mod:`behave_aitest.hooks`
from them instead (see that module's docstring).
"""

from .hooks import (
    after_all,
    after_feature,
    after_scenario,
    before_all,
    before_feature,
    before_scenario,
    before_step,
)

__all__ = [
    "before_all",
    "after_all",
    "before_feature",
    "after_feature",
    "before_scenario",
    "after_scenario",
    "before_step",
]
