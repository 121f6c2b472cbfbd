"""Regression tests for the four defects fuzzing found in the core (issue 9), with crafted Requests
only (no socket): what a front hands the core is checked once at its door, nothing odd makes
App.handle raise, and no --cgi-max slot is left taken. Each test names what today's code did
before the fix, so that it is clear why it fails there."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cgibox.core import cgi as cgi_module
from cgibox.core import cgi_protocol
from cgibox.core import request as request_module
from cgibox.core.cgi import Script
from cgibox.core.cgi_protocol import build_environ
from cgibox.core.errors import HTTPError, error_response
from cgibox.core.request import Headers, Request
from tests.unit.test_cgi_runner import call, make_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """--cgi-max 2, as in the issue: two leaked slots were enough to take every script down."""
    return make_app(tmp_path_factory.mktemp("odd"), cgi_max=2, cgi_timeout=5.0)


def handle(app, request: Request):
    if "host" not in request.headers:  # HTTP/1.1 needs exactly one (RFC 9112 3.2)
        request.headers.add("Host", "localhost")
    response = app.handle(request)
    response.close()
    return response


def assert_no_slot_taken(app) -> None:
    assert app.cgi.slots.busy() == 0
    response, data = call(app, "/cgi-bin/status")
    assert response.status == 418 and data == b"teapot\n"


# -- 1. lone surrogates in a path --------------------------------------------------------------

@pytest.mark.parametrize("target", ["/\ud800", "/cgi-bin/\ud800", "/dir/\udfff", "/\udcff"])
def test_a_lone_surrogate_in_the_target_is_400_not_an_exception(app, target):
    """App.handle raised UnicodeEncodeError while encoding the 500 page of the UnicodeEncodeError
    os.lstat had raised: a target no request line can carry is now a 400 at the door."""
    response = handle(app, Request("GET", target))
    assert response.status == 400
    assert b"\\ud800" in response.body or b"\\udfff" in response.body or b"\\xff" in response.body


def test_routing_a_lone_surrogate_past_the_door_is_a_404(app):
    """route() (a local redirect takes it without the door) must not raise either."""
    with pytest.raises(HTTPError) as caught:
        app.route(Request("GET", "/\ud800"))
    assert caught.value.status == 404


def test_the_error_page_never_raises_on_a_path_it_cannot_encode(app):
    for wants_json in (False, True):
        target = "/\ud800" + ("?format=json" if wants_json else "")
        response = error_response(app.templates, Request("GET", target), 404)
        response.body.decode("utf-8")  # valid UTF-8 whatever the path held
        assert response.header("Content-Length") == str(len(response.body))


# -- 2. the core's door and the CGI environment ------------------------------------------------

@pytest.mark.parametrize("headers", [
    [("X-A", "a\x00b")], [("Cookie", "a\x00b")], [("X-A", "a\rb")], [("X-A", "a\nb")],
    [("X-A", "\ud800")], [("X-A", "\udc80")], [("X-A", "\u0100")],
    [("Proxy\n", "http://evil/")], [("X-A\n", "1")], [("X A", "1")], [("", "1")], [("X-\x00", "1")],
], ids=repr)
def test_fields_no_client_can_send_are_400_before_any_script_runs(app, headers):
    """A NUL reached Popen (500: embedded null byte) and leaked a slot; "Proxy\\n" passed the
    name check (re.match with "$") and became HTTP_PROXY\\n; a lone surrogate gave a 500."""
    runs = app.stats.snapshot()["cgi_runs"]
    response, _ = call(app, "/cgi-bin/dump", headers=headers)
    assert response.status == 400
    assert app.stats.snapshot()["cgi_runs"] == runs
    assert_no_slot_taken(app)


@pytest.mark.parametrize("method", ["G\x00T", "GET\n", "G T", "GÉT", "\ud800", ""], ids=repr)
def test_a_method_no_client_can_send_is_400(app, method):
    """A method with NUL gave a 500 from Popen (REQUEST_METHOD) and kept the slot."""
    response, _ = call(app, "/cgi-bin/dump", method=method)
    assert response.status == 400
    assert_no_slot_taken(app)


@pytest.mark.parametrize("target", ["/a b", "/a\x00", "/a\r\n", "/caf\xe9", "", "relative", "/\x7f"],
                         ids=repr)
def test_a_target_no_client_can_send_is_400(app, target):
    assert handle(app, Request("GET", target)).status == 400


def test_the_door_lets_every_valid_request_through():
    request = Request("PATCH", "/x?y=%FF", "HTTP/1.0",
                      Headers([("X-Latin", "caf\xe9\t ok"), ("A!#$%&'*+.^_`|~", "")]))
    assert request_module.request_problem(request) is None
    host = [("Host", "example.com")]  # HTTP/1.1 needs exactly one (RFC 9112 3.2)
    assert request_module.request_problem(Request("OPTIONS", "*", headers=Headers(host))) is None
    assert request_module.request_problem(Request("GET", "http://example.com/x", headers=Headers(host))) \
        is None
    assert request_module.request_problem(Request("GET", "/", "HTTP/1.1\n")) == "malformed HTTP version"


def _environ(request: Request, path_info: str = "") -> dict[str, str]:
    return build_environ(request, script_name="/cgi-bin/dump", path_info=path_info,
                         script_filename="/srv/cgi-bin/dump", document_root="/srv/www",
                         path_translated=None, content_length=None, server_software="cgibox/test")


def test_a_header_name_ending_in_a_newline_is_not_an_environment_name():
    """build_environ used re.match(r"^[A-Za-z0-9-]+$"), which matches "proxy\\n": HTTP_PROXY\\n."""
    env = _environ(Request("GET", "/cgi-bin/dump", headers=Headers([("Proxy\n", "http://evil/")])))
    assert not [name for name in env if "PROXY" in name]


@pytest.mark.parametrize("value", ["a\x00b", "a\rb", "a\nb", "\ud800"], ids=repr)
def test_check_environ_refuses_what_a_script_cannot_be_given(value):
    with pytest.raises(HTTPError) as caught:
        cgi_protocol.check_environ({"PATH": "/bin", "X": value})
    assert caught.value.status == 400
    with pytest.raises(HTTPError):
        cgi_protocol.check_environ({"BAD NAME": "x"})
    # surrogate-escaped bytes pass: they are bytes the OS can be given
    assert cgi_protocol.check_environ({"X": "caf\udce9 \t"}) == {"X": "caf\udce9 \t"}


@pytest.mark.parametrize("encoded", ["%0A", "%0D", "%0d%0a"])
def test_a_path_info_with_an_encoded_line_break_is_400_and_takes_no_slot(app, encoded):
    """PATH_INFO is decoded: a CR or LF in it would have reached the script's environment."""
    response, _ = call(app, f"/cgi-bin/dump/a{encoded}b")
    assert response.status == 400
    assert_no_slot_taken(app)


def test_path_info_with_bytes_that_are_not_utf8_reaches_the_script_as_those_bytes(app):
    import json
    response, data = call(app, "/cgi-bin/dump/caf%E9%FF")
    assert response.status == 200
    assert json.loads(data)["env"]["PATH_INFO"].encode("latin-1") == b"/caf\xe9\xff"


# -- 3. the --cgi-max slot leak ------------------------------------------------------------------

def test_requests_with_nul_in_a_header_leave_every_slot_free(app):
    """With --cgi-max 2, two requests carrying `X-A: a\\x00b` left every later script at 503."""
    for _ in range(3):
        response, _ = call(app, "/cgi-bin/dump", headers=[("X-A", "a\x00b")])
        assert response.status == 400
    assert_no_slot_taken(app)


def test_a_spawn_that_fails_with_anything_releases_its_slot(app):
    """CGIRunner._start released its slot on OSError only; Popen refuses an environment with
    ValueError (embedded null byte), and that slot was taken for good."""
    runner = app.cgi
    filename = os.path.join(app.cgi_dir, "dump")
    script = Script("/cgi-bin/dump", filename, "")
    for env in ({"X": "a\x00b"}, {"X": "\ud800"}):
        reserved = runner.slots.acquire()
        assert reserved is not None
        with pytest.raises((ValueError, UnicodeError)):
            runner._start(script, [filename], env, reserved, None)
        assert runner.slots.busy() == 0
    assert_no_slot_taken(app)


class CountingBody:
    """A chunked body's stream that says how much of it was read."""

    def __init__(self, data: bytes) -> None:
        import io
        self.stream = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.read_bytes += len(data)
        return data


def test_a_refused_environment_reads_no_chunked_body_and_spools_nothing(app):
    """A chunked body was spooled before the environment was checked; now the check comes first
    (CONTENT_LENGTH is digits whatever the spooled length), so a 400 reads and spools nothing."""
    body = CountingBody(b"x" * 10)
    request = Request("POST", "/cgi-bin/dump/a%0Ab", headers=Headers([("Transfer-Encoding", "chunked")]),
                      body=body, body_length=None)  # type: ignore[arg-type]
    assert handle(app, request).status == 400
    assert body.read_bytes == 0
    assert_no_slot_taken(app)


def test_a_body_is_not_read_while_every_slot_is_busy(app):
    """Bodies are read whole before a slot is taken (a slow client holds none); with every slot
    busy when the request comes, the answer is 503 at once and nothing is read or spooled."""
    taken = [app.cgi.slots.acquire() for _ in range(app.config.cgi_max)]
    try:
        body = CountingBody(b"x" * 100)
        request = Request("POST", "/cgi-bin/echo", headers=Headers([("Transfer-Encoding", "chunked")]),
                          body=body, body_length=None)  # type: ignore[arg-type]
        assert handle(app, request).status == 503
        assert body.read_bytes == 0
    finally:
        for slot in taken:
            app.cgi.slots.release(slot)
    assert_no_slot_taken(app)


def test_a_chunked_body_over_max_body_frees_its_slot_and_spool(tmp_path):
    """A 413 (or a broken body) while spooling closes the spool and takes no slot."""
    app = make_app(tmp_path, cgi_max=1, max_body=100)
    opened = []
    real_spooled_file = cgi_module.tempfile.SpooledTemporaryFile

    def spooled_file(*args, **kwargs):  # the real spool, with a hold on the file it made
        opened.append(real_spooled_file(*args, **kwargs))
        return opened[-1]

    body = CountingBody(b"x" * (app.config.max_body + 1))
    request = Request("POST", "/cgi-bin/echo", headers=Headers([("Transfer-Encoding", "chunked")]),
                      body=body, body_length=None)  # type: ignore[arg-type]
    cgi_module.tempfile.SpooledTemporaryFile = spooled_file  # type: ignore[misc]
    try:
        response = handle(app, request)
    finally:
        cgi_module.tempfile.SpooledTemporaryFile = real_spooled_file  # type: ignore[misc]
    assert response.status == 413 and response.close_connection
    assert opened and all(spool.closed for spool in opened)
    assert_no_slot_taken(app)


# -- 4. one stat-to-status mapping -----------------------------------------------------------

def test_a_name_too_long_answers_the_same_for_files_and_scripts(app):
    """os.stat's ENAMETOOLONG was a 404 for a file but a 403 for a script."""
    long_name = "a" * 300
    try:
        os.stat(os.path.join(app.cgi_dir, long_name))
    except OSError as error:
        assert error.errno == errno.ENAMETOOLONG
    file_status = handle(app, Request("GET", "/" + long_name)).status
    script_status = handle(app, Request("GET", "/cgi-bin/" + long_name)).status
    assert file_status == script_status == 404


def test_a_loop_of_symlinks_answers_the_same_for_files_and_scripts(app):
    root, cgi_dir = Path(app.root), Path(app.cgi_dir)
    for folder in (root, cgi_dir):
        if not (folder / "loop").is_symlink():
            (folder / "loop").symlink_to(folder / "loop")
    file_status = handle(app, Request("GET", "/loop")).status
    script_status = handle(app, Request("GET", "/cgi-bin/loop")).status
    assert file_status == script_status == 404


# -- found by the raw-socket fuzz run (tests/behaviour/test_raw_fuzz.py) ---------------------

class GunicornChunkedBody:
    """gunicorn's body stream for `zz\\r\\n` as a chunk size: it raises its own exception."""

    def read(self, size: int = -1) -> bytes:
        from gunicorn.http.errors import InvalidChunkSize
        raise InvalidChunkSize(b"zz")


@pytest.mark.parametrize("length", [None, 5])
def test_a_body_stream_that_raises_its_own_exception_is_400_not_500(app, length):
    """On gunicorn, `Transfer-Encoding: chunked` with a chunk size `zz` gave a 500."""
    request = Request("POST", "/cgi-bin/echo", headers=Headers([("Content-Length", "5")] if length else []),
                      body=GunicornChunkedBody(), body_length=length)  # type: ignore[arg-type]
    response = handle(app, request)
    assert response.status == 400 and response.close_connection
    assert_no_slot_taken(app)


def test_a_folder_gone_between_its_stat_and_its_listing_is_404(app, tmp_path):
    """os.scandir's FileNotFoundError (the folder removed after its stat) was a 500."""
    folder = Path(app.root) / "vanishing"
    folder.mkdir()
    st = os.stat(folder)
    folder.rmdir()
    with pytest.raises(HTTPError) as caught:
        app.static.listing(Request("GET", "/vanishing/"), "/vanishing/", str(folder), st)
    assert caught.value.status == 404
