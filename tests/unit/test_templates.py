"""core/templates.py: one environment, autoescape on, a --templates folder first by file name."""

from __future__ import annotations

import jinja2
import pytest

from cgibox.core.templates import Templates


def test_builtin_templates_render():
    templates = Templates()
    for name, context in [
        ("404.html", {"path": "/x", "status": 404, "reason": "Not Found"}),
        ("error.html", {"path": "/x", "status": 500, "reason": "Internal Server Error", "detail": "d"}),
        ("listing.html", {"path": "/", "breadcrumbs": [("/", "/")], "entries": [], "sort": "name",
                          "order": "asc", "parent": None}),
        ("stats.html", {"stats": {"uptime_seconds": 5, "started_at": "t", "requests_total": 1,
                                  "bytes_sent": 2, "cgi_runs": 0, "front": "threading"},
                        "responses": [("200", 1)]}),
    ]:
        html = templates.render(name, **context)
        assert html.startswith("<!doctype html>") and "</html>" in html, name


def test_autoescape():
    html = Templates().render("error.html", status=400, reason="Bad", detail="<i>d</i>", path="/<b>")
    assert "<i>" not in html and "&lt;i&gt;" in html and "/&lt;b&gt;" in html


def test_override_by_file_name_and_fallback(tmp_path):
    (tmp_path / "404.html").write_text("mine {{ path }}")
    (tmp_path / "base.html").write_text("BASE {% block content %}{% endblock %}")
    templates = Templates(tmp_path)
    assert templates.render("404.html", path="<x>") == "mine &lt;x&gt;"
    # error.html is built in, but extends the overridden base.html
    assert templates.render("error.html", status=500, reason="r", path="/").startswith("BASE")


def test_missing_template_is_an_error():
    with pytest.raises(jinja2.TemplateNotFound):
        Templates().render("nope.html")


def test_overrides_are_escaped_too(tmp_path):
    (tmp_path / "error.html").write_text("{{ detail }}")
    assert Templates(tmp_path).render("error.html", detail="<script>") == "&lt;script&gt;"
