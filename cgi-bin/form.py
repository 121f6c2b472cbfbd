#!/usr/bin/env python3
"""An HTML form that posts to itself, read without the removed `cgi` module."""
import html
import os
import sys
from urllib.parse import parse_qs

name = ""
if os.environ.get("REQUEST_METHOD") == "POST":
    body = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
    name = parse_qs(body.decode("utf-8", "replace")).get("name", [""])[0]
action = html.escape(os.environ.get("SCRIPT_NAME", ""), quote=True)
greeting = f"<p>Hello, {html.escape(name)}!</p>" if name else ""
print("Content-Type: text/html; charset=utf-8\n")
print(f"""<!doctype html><title>form.py</title>{greeting}
<form method="post" action="{action}"><label>Your name <input name="name"></label>
<button>Send</button></form>""")
