"""`make bench`: see bench/run.py (the command line) and docs/ARCHITECTURE.md for its modules.
BENCH and REPO are where the bench and the checkout it measures are."""

from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
