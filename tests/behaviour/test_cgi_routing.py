"""/cgi-bin/ routing: which file runs, what is 403 or 404, and that no trick reaches source or
anything outside the cgi dir (the same confinement function as static files)."""

from __future__ import annotations

import pytest

from tests.behaviour.site_cgi import NO_SHEBANG, NOT_EXECUTABLE


def test_a_script_runs(server):
    reply = server.get("/cgi-bin/hello")
    assert reply.status == 200
    assert reply.text.startswith("Hello from cgibox/")
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize("path", ["/cgi-bin/", "/cgi-bin"])
def test_the_cgi_dir_itself_is_never_listed(server, path):
    reply = server.get(path)
    assert reply.status == 403
    for name in ("dump", "nph-raw", "ticker"):
        assert name not in reply.text


def test_a_script_in_a_nested_folder_runs_with_the_rest_as_path_info(server):
    reply = server.get("/cgi-bin/sub/inner/x/y.txt")
    assert reply.status == 200
    assert reply.text == "/cgi-bin/sub/inner|/x/y.txt\n"


def test_no_path_info_is_empty(server):
    assert server.get("/cgi-bin/sub/inner").text == "/cgi-bin/sub/inner|\n"


@pytest.mark.parametrize("path", ["/cgi-bin/sub", "/cgi-bin/sub/", "/cgi-bin/sub/deeper/"])
def test_a_folder_is_forbidden(server, path):
    assert server.get(path).status == 403


@pytest.mark.parametrize("path", ["/cgi-bin/no-such-script", "/cgi-bin/sub/no-such-script",
                                  "/cgi-bin/no-such-folder/hello"])
def test_a_missing_script_is_404(server, path):
    assert server.get(path).status == 404


def test_a_file_that_is_not_executable_is_403_and_its_source_is_not_sent(server):
    reply = server.get(f"/cgi-bin/{NOT_EXECUTABLE}")
    assert reply.status == 403
    assert "echo source" not in reply.text


def test_the_output_is_sent_never_the_source(server):
    reply = server.get("/cgi-bin/hello")
    assert "#!/bin/sh" not in reply.text
    assert "printf" not in reply.text


def test_a_symlink_that_stays_in_the_cgi_dir_runs(server):
    assert server.get("/cgi-bin/hello-link").status == 418


def test_an_executable_without_an_interpreter_line_is_502(server):
    assert server.get(f"/cgi-bin/{NO_SHEBANG}").status == 502


TRICKS = [
    "/cgi-bin/../cgi-bin/hello",
    "/cgi-bin/%2e%2e/cgi-bin/hello",
    "/cgi-bin/%2E%2E/%2E%2E/outside/evil",
    "/cgi-bin/./hello",
    "/cgi-bin/sub%2finner",
    "/cgi-bin/sub%2Finner",
    "/cgi-bin%2fhello",
    "/cgi-bin/sub%5cinner",
    "/CGI-BIN/hello",
    "/Cgi-Bin/hello",
    "/cgi-bin/HELLO",
    "/cgi-bin/.hidden",
    "/cgi-bin/%2ehidden",
    "/cgi-bin/escape",
    "/cgi-bin//hello",
    "/cgi-bin/hello%00",
    "/cgi-bin/hello/../../outside/evil",
    "/cgi-bin/hello/%2e%2e/plain.txt",
]


@pytest.mark.parametrize("path", TRICKS)
def test_tricks_reach_no_source_and_nothing_outside(server, path):
    reply = server.get(path)
    assert reply.status in (400, 403, 404), reply.status
    for leaked in ("HIDDEN-SCRIPT-RAN", "OUTSIDE-SCRIPT-RAN", "#!/bin/sh", "Hello from"):
        assert leaked not in reply.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_every_method_reaches_the_script(server, method):
    reply = server.request(method, "/cgi-bin/dump", body=b"")
    assert reply.status == 200
    assert reply.json()["env"]["REQUEST_METHOD"] == method


# -- --cgi-ext: scripts beside their files under the root ------------------------------------------------

@pytest.fixture
def beside(make_server, tmp_path):
    """A root where gitweb-like scripts sit next to the files they link (AddHandler cgi-script .cgi)."""
    root = tmp_path / "www"
    app = root / "app"
    (app / "folder.cgi").mkdir(parents=True)
    (app / "folder.cgi" / "inside.txt").write_text("in a folder\n")
    (app / "style.css").write_text("body {}\n")
    show = app / "show.cgi"
    show.write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\n\\n%s|%s|%s\\n" '
                    '"$SCRIPT_NAME" "$PATH_INFO" "$REQUEST_METHOD"\n')
    show.chmod(0o755)
    (app / "source.cgi").write_text("#!/bin/sh\necho SECRET\n")  # not executable
    hidden = app / ".hidden.cgi"
    hidden.write_text(show.read_text())
    hidden.chmod(0o755)
    outside = tmp_path / "outside.cgi"
    outside.write_text(show.read_text())
    outside.chmod(0o755)
    (app / "out.cgi").symlink_to(outside)
    (app / "in.cgi").symlink_to(show)
    return make_server(["--cgi-ext", ".cgi", "--write", "/*"], root=root)


def test_cgi_ext_runs_scripts_in_place(beside):
    assert beside.get("/app/show.cgi").body == b"/app/show.cgi||GET\n"
    assert beside.get("/app/show.cgi/a/b?x").body == b"/app/show.cgi|/a/b|GET\n"
    assert beside.request("POST", "/app/show.cgi", body=b"x").body == b"/app/show.cgi||POST\n"
    assert beside.get("/app/in.cgi").body == b"/app/in.cgi||GET\n"  # a symlink inside the root
    assert beside.get("/app/style.css").body == b"body {}\n"  # the files beside are files


def test_cgi_ext_keeps_the_roots_rules(beside):
    reply = beside.get("/app/source.cgi")
    assert reply.status == 403 and b"SECRET" not in reply.body  # never the source
    assert beside.get("/app/.hidden.cgi").status == 404
    assert beside.get("/app/out.cgi").status == 404  # a symlink out of the root
    assert beside.get("/app/missing.cgi").status == 404
    assert beside.get("/app/style.css/x.cgi").status == 404
    assert beside.get("/app/folder.cgi/inside.txt").body == b"in a folder\n"
    # a script's URL takes every method, as /cgi-bin/ does: a PUT runs it, never replaces it
    # (core.access refuses writes to --cgi-ext names: tests/unit/test_access.py)
    assert beside.request("PUT", "/app/show.cgi", body=b"x").body == b"/app/show.cgi||PUT\n"
