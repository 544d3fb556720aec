"""``python -m behave_aitest.cassettes prune [--check]`` (docs/cassettes.md): the console
script's ``behave-aitest cassettes`` without the console script. The cassettes themselves live
in :mod:`behave_aitest.record.cassettes`, their command in :mod:`behave_aitest.cli`.
"""

if __name__ == "__main__":
    import sys

    from .cli.cassettes import main

    sys.exit(main())
