"""behave's hooks, for a project whose features/environment.py has hooks of its own::

    from behave_aitest import hooks as aitest

    def before_all(context):
        aitest.before_all(context)
        ...  # your set-up

(``from behave_aitest.environment import *`` is the whole file when it has none.) The hooks
live in :mod:`behave_aitest.run.hooks`; this name is the one projects type.
"""

from .run.hooks import (
    after_all,
    after_feature,
    after_scenario,
    before_all,
    before_feature,
    before_scenario,
    before_step,
)

__all__ = ["after_all", "after_feature", "after_scenario", "before_all", "before_feature", "before_scenario", "before_step"]
