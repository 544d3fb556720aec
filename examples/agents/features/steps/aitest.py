from behave_aitest.steps import *  # noqa: F401,F403
