"""`gunicorn cgibox.wsgi:application`: the WSGI entry point, configured by CGIBOX_* variables."""

from cgibox.fronts.wsgi import application

__all__ = ["application"]
