"""Run behave in this process and write this process's peak RSS (bytes) to a file at exit.

    python bench/rss.py OUT_FILE [behave arguments...]

The peak of the behave process alone: ``wait4`` on the parent's side would report the
largest of the process and its children (the MCP servers).
"""

import atexit
import resource
import sys

if sys.path and sys.path[0].rstrip("/").endswith("bench"):
    del sys.path[0]  # this folder's modules must not shadow anything behave or the steps import
out_file, *behave_args = sys.argv[1:]


def _report() -> None:
    with open(out_file, "w", encoding="utf-8") as out:
        out.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))  # Linux: kilobytes


atexit.register(_report)
from behave.__main__ import main  # noqa: E402

sys.exit(main(behave_args))
