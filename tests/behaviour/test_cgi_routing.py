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


def test_a_symlink_out_of_the_cgi_dir_runs(server):
    """The folder is the operator's, and so is what its links point at (Debian's gitweb.cgi is a
    link into /usr/share/gitweb; lighttpd and Apache run it): an executable regular file runs."""
    assert server.get("/cgi-bin/escape").text == "OUTSIDE-SCRIPT-RAN\n"


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


# -- --cgi-mount: a program or a folder anywhere, with settings of its own --------------------------------

ECHO = ('#!/bin/sh\ncat > /dev/null\nprintf "Content-Type: text/plain\\n\\n%s|%s|%s|%s\\n" '
        '"$SCRIPT_NAME" "$PATH_INFO" "$MOUNT_VAR" "$CONTENT_LENGTH"\n')


def executable(path, text: str = ECHO):
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def mounted(make_server, tmp_path):
    """A program at /app (and one at /app/deeper), a folder at /tools with its own variable and
    body limit, from a config file and a flag; the program lives outside the root."""
    program = executable(tmp_path / "program")
    tools = tmp_path / "tools"
    tools.mkdir()
    executable(tools / "echo")
    executable(tools / "silent", "#!/bin/sh\nsleep 30\n")
    config = tmp_path / "cgibox.toml"
    config.write_text(f'[[cgi_mount]]\npath = "/app"\nprogram = "{program}"\n'
                      'env = { MOUNT_VAR = "app" }\nmax_body = 5\n\n'
                      '[[cgi_mount]]\npath = "/tools"\ndir = "tools"\nenv = { MOUNT_VAR = "tools" }\n'
                      'timeout = 1\n')
    return make_server(["--config", str(config), "--cgi-env", "MOUNT_VAR=global",
                        "--cgi-mount", f"/other={program}"])


def test_a_program_mount_answers_every_path_under_it(mounted):
    assert mounted.get("/app").body == b"/app||app|\n"
    assert mounted.get("/app/").body == b"/app|/|app|\n"
    assert mounted.get("/app/repo.git/info/refs?service=x").body == b"/app|/repo.git/info/refs|app|\n"
    assert mounted.get("/app/.hidden/x").body == b"/app|/.hidden/x|app|\n"  # the program's to judge
    assert mounted.get("/application").status == 404  # a prefix is whole segments
    assert mounted.get("/app/a/../b").status == 404  # never handed on
    assert mounted.get("/other/x").body == b"/other|/x|global|\n"  # a flag's mount: the server's


def test_a_mounts_own_body_limit(mounted):
    assert mounted.request("POST", "/app/x", body=b"12345").body == b"/app|/x|app|5\n"
    assert mounted.request("POST", "/app/x", body=b"123456").status == 413
    # elsewhere --max-body holds
    assert mounted.request("POST", "/other/x", body=b"123456").body == b"/other|/x|global|6\n"


def test_a_folder_mount_runs_its_scripts_with_its_variables(mounted):
    assert mounted.get("/tools/echo/p").body == b"/tools/echo|/p|tools|\n"
    assert mounted.get("/tools/").status == 403
    assert mounted.get("/tools/missing").status == 404
    assert mounted.get("/cgi-bin/dump").status == 200  # --cgi-dir goes on
    assert mounted.get("/tools/silent").status == 504  # the mount's own --cgi-timeout (30 s else)


def test_symlinks_in_the_operators_folder_run(make_server, tmp_path):
    """Debian's /usr/lib/cgi-bin/gitweb.cgi is a link into /usr/share/gitweb."""
    folder, elsewhere = tmp_path / "cgi", tmp_path / "elsewhere"
    folder.mkdir()
    (elsewhere / "sub").mkdir(parents=True)
    executable(elsewhere / "real.cgi")
    executable(elsewhere / "sub" / "inner")
    (elsewhere / "plain").write_text("no x bit\n")
    (folder / "linked.cgi").symlink_to(elsewhere / "real.cgi")
    (folder / "plain").symlink_to(elsewhere / "plain")
    (folder / "subdir").symlink_to(elsewhere / "sub")
    (folder / ".hidden").symlink_to(elsewhere / "real.cgi")
    running = make_server(cgi_dir=folder)
    assert running.get("/cgi-bin/linked.cgi/x").body == b"/cgi-bin/linked.cgi|/x||\n"
    assert running.get("/cgi-bin/plain").status == 404
    assert running.get("/cgi-bin/subdir/inner").status == 404  # folders reached by a link are not
    assert running.get("/cgi-bin/.hidden").status == 404
