#!/usr/bin/env python3
"""An HTML form that posts to itself, read without the removed `cgi` module."""
import html
import os
import sys
from urllib.parse import parse_qs

# the look of cgibox's own pages (light and dark, phone-sized), kept here so the sample stands alone
STYLE = """:root { color-scheme: light dark; --fg: #1f2328; --muted: #5c6570; --bg: #f6f7f9; --card: #fff;
  --line: #e2e5e9; --link: #0a57c2; --focus: #2f6fde; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e8ee; --muted: #9ba5b2; --bg: #0e1116; --card: #161a21;
  --line: #2b323c; --link: #7db4ff; --focus: #7db4ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
main { max-width: 40rem; margin: 0 auto; padding: 1.25rem 1rem; }
h1 { font-size: 1.35rem; font-weight: 600; margin: 0.25rem 0 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; }
label { display: block; font-weight: 600; margin-bottom: 0.35rem; }
input { width: 100%; font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line);
  border-radius: 6px; padding: 0.45rem 0.65rem; }
button { margin-top: 0.75rem; font: inherit; font-weight: 600; color: #fff; background: #2f6fde; border: 0;
  border-radius: 6px; padding: 0.45rem 1.1rem; cursor: pointer; }
:focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
.greeting { font-size: 1.1rem; overflow-wrap: anywhere; }
a { color: var(--link); }
footer { color: var(--muted); font-size: 0.85rem; margin-top: 1rem; }"""

name = ""
if os.environ.get("REQUEST_METHOD") == "POST":
    body = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
    name = parse_qs(body.decode("utf-8", "replace")).get("name", [""])[0]
action = html.escape(os.environ.get("SCRIPT_NAME", ""), quote=True)
greeting = f'<p class="greeting" role="status">Hello, {html.escape(name)}!</p>' if name else ""
print("Content-Type: text/html; charset=utf-8\n")
print(f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>form.py</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>A form that posts to itself</h1>
{greeting}
<form class="card" method="post" action="{action}">
<label for="name">Your name</label>
<input id="name" name="name" autocomplete="name" required>
<button>Send</button>
</form>
<footer>A CGI script in Python, reading its form without the removed <code>cgi</code> module.
<a href="/">Back to the top folder</a></footer>
</main>
</body>
</html>""")
