from behave_aitest.environment import *  # noqa: F401,F403
