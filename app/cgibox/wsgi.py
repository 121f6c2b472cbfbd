"""`gunicorn cgibox.wsgi:application`: the WSGI entry point, configured by CGIBOX_* variables.

The variables are checked when gunicorn imports this module, so a bad one stops the server at
start with a line naming it, rather than failing every request.
"""

import os
import sys

from cgibox.config import ConfigError, load
from cgibox.fronts.wsgi import LazyApplication

# gunicorn's Arbiter.APP_LOAD_ERROR: a worker exiting with it makes the master stop ("App failed to
# load.") instead of starting new workers that would fail the same way
APP_LOAD_ERROR = 4

try:
    application = LazyApplication(load({}, os.environ))
except ConfigError as error:
    sys.stderr.write(f"cgibox: {error}\n")
    sys.stderr.flush()
    raise SystemExit(APP_LOAD_ERROR) from None

__all__ = ["application"]
