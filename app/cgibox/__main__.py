"""`python -m cgibox` is the `cgibox` console script."""

from cgibox.cli import main

raise SystemExit(main())
