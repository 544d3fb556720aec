"""Run an MCP server module after appending one line (this process's id) to a count file.

    python bench/counted_server.py <module> [args...]      # BENCH_COUNT_FILE=/path/to/file

Used by the server-scope benchmark to count how many server processes a run starts.
"""

import os
import runpy
import sys

if sys.path and sys.path[0].rstrip("/").endswith("bench"):
    del sys.path[0]  # this folder's modules must not shadow the server's imports
with open(os.environ["BENCH_COUNT_FILE"], "a", encoding="utf-8") as counts:
    counts.write(f"{os.getpid()}\n")
module, *rest = sys.argv[1:]
sys.argv = [module, *rest]
runpy.run_module(module, run_name="__main__", alter_sys=True)
