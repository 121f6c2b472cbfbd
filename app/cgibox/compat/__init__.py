"""http.server's SimpleHTTPRequestHandler and CGIHTTPRequestHandler (removed in Python 3.15),
with the standard library's API and cgibox's core doing the serving.

    from cgibox.compat import CGIHTTPRequestHandler
    HTTPServer(("127.0.0.1", 8000), CGIHTTPRequestHandler).serve_forever()

`python -m cgibox.compat [--cgi] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [PORT]` is
`python -m http.server` with these handlers. Importing this package needs no gunicorn.
"""

from cgibox.compat.handlers import CGIHTTPRequestHandler, SimpleHTTPRequestHandler

__all__ = ["CGIHTTPRequestHandler", "SimpleHTTPRequestHandler"]
