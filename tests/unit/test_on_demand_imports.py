"""prometheus_client, markdown-it-py and bcrypt are loaded on first use, not when a serving
process starts (idle RSS a process is one of the bench's targets), and App.load_on_demand_modules
loads them ahead for the forking front's parent."""

from __future__ import annotations

import subprocess
import sys

ON_DEMAND = ("prometheus_client", "markdown_it", "bcrypt")

PROGRAM = """
import sys, tempfile, os
from cgibox.config import Config
from cgibox.core.request import Headers, Request
from cgibox.core.router import App
from cgibox.core.stats import Stats

root, cgi_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
with open(os.path.join(root, "README.md"), "w") as readme:
    readme.write("# hello *there*")
app = App(Config(root=root, cgi_dir=cgi_dir), Stats.create(os.path.join(cgi_dir, "stats")), "threading")
def get(target):
    return app.handle(Request("GET", target, headers=Headers([("Host", "localhost")])))
get("/healthz")
print(" ".join(sorted(name for name in {on_demand!r} if name in sys.modules)))
{then}
print(" ".join(sorted(name for name in {on_demand!r} if name in sys.modules)))
"""


def loaded(then: str) -> list[str]:
    program = PROGRAM.format(on_demand=ON_DEMAND, then=then)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_a_started_app_has_not_loaded_them_and_a_readme_and_a_scrape_load_theirs():
    before, after = loaded('html = get("/").body; get("/metrics"); '
                           'assert b"<em>there</em>" in bytes(html)')
    assert before == ""
    assert after == "markdown_it prometheus_client"


def test_load_on_demand_modules_loads_them_ahead():
    before, after = loaded("app.load_on_demand_modules()")
    assert before == ""
    assert after == "markdown_it prometheus_client"  # bcrypt only with --auth-file
