"""``python -m behave_aitest.cli ARGS``: the ``behave-aitest`` console script without the script."""

import sys

from .app import main

sys.exit(main())
