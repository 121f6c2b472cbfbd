"""Error pages over the wire on every front: templated HTML (escaped), JSON when asked, and a
--templates folder overriding 404.html and error.html."""

from __future__ import annotations

import pytest


def test_404_page(server):
    reply = server.get("/no-such-file.txt")
    assert reply.status == 404
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert reply.header("Content-Length") == str(len(reply.body))
    assert reply.text.lstrip().startswith("<!doctype html>")
    assert "Not Found" in reply.text and "/no-such-file.txt" in reply.text


@pytest.mark.parametrize("target", [
    "/<script>alert(1)</script>",
    "/%3Cscript%3Ealert(1)%3C/script%3E",
    "/a\"onmouseover='alert(1)'",
])
def test_404_page_escapes_the_path(server, target):
    data = server.raw(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert b"<script>" not in body and b"onmouseover='" not in body
    assert b"&lt;script&gt;" in body or b"%3Cscript%3E" in body or b"&#39;" in body


def test_error_json_when_asked(server):
    reply = server.get("/no-such-file.txt", Accept="application/json")
    assert reply.status == 404 and reply.header("Content-Type") == "application/json"
    assert reply.json() == {"status": 404, "error": "Not Found", "path": "/no-such-file.txt"}
    reply = server.request("DELETE", "/hello.txt", {"Accept": "application/json"})
    assert reply.json() == {"status": 405, "error": "Method Not Allowed", "path": "/hello.txt"}
    assert server.get("/no-such-file.txt?format=json").json()["status"] == 404


def test_other_errors_use_the_error_page(server):
    reply = server.request("PUT", "/hello.txt", body=b"x")
    assert reply.status == 405 and "Method Not Allowed" in reply.text
    assert reply.text.lstrip().startswith("<!doctype html>")
    reply = server.get("/range.bin", Range="bytes=99999-")
    assert reply.status == 416 and "Range Not Satisfiable" in reply.text


def test_malformed_request_gets_an_html_error(server):
    data = server.raw(b"GET /x HTTP/1.1 extra\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"<!doctype html>" in body.lower() or b"400" in body


@pytest.fixture
def custom_templates(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "404.html").write_text("<p>CUSTOM-404 {{ path }}</p>\n")
    (folder / "error.html").write_text("<p>CUSTOM-ERROR {{ status }} {{ reason }}</p>\n")
    return folder


def test_templates_override(make_server, custom_templates):
    server = make_server(["--templates", str(custom_templates)])
    reply = server.get("/missing-<b>")
    assert reply.status == 404 and reply.text.strip() == "<p>CUSTOM-404 /missing-&lt;b&gt;</p>"
    reply = server.request("DELETE", "/hello.txt")
    assert reply.status == 405 and reply.text.strip() == "<p>CUSTOM-ERROR 405 Method Not Allowed</p>"
    # what the folder does not override stays built in
    assert "Index of /plain-dir/" in server.get("/plain-dir/").text
    assert server.get("/missing", Accept="application/json").json()["status"] == 404
