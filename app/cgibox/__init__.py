"""cgibox: a static-file and CGI/1.1 server appliance (package root: version only)."""

__version__ = "0.1.0"
