"""core.cgi_protocol under hypothesis: any bytes a script writes as its head parse into a status
and clean header fields or are refused (502); any request the core's door lets in gives an
environment with no CR, LF or NUL, plain variable names, and none of the hidden headers."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from cgibox.core.cgi_protocol import (
    HIDDEN_HEADERS,
    MalformedHead,
    build_environ,
    check_environ,
    head_end,
    parse_head,
    parse_nph_head,
    query_argv,
)
from cgibox.core.errors import HTTPError
from cgibox.core.paths import decode_path
from cgibox.core.request import Headers, Request, request_problem
from cgibox.grammars import HOP_BY_HOP

FORBIDDEN_ENV = {"HTTP_" + name.upper().replace("-", "_") for name in HIDDEN_HEADERS}

field_lines = st.one_of(
    st.sampled_from([b"Content-Type: text/plain", b"Status: 200 OK", b"Status: 404", b"Status: 99",
                     b"Status: 200\x00", b"Location: /local", b"Location: http://x/", b"Location:",
                     b"Content-Length: 5", b"Content-Length: \xb2", b"Content-Length: 5, 6",
                     b"Connection: close", b"Transfer-Encoding: chunked", b"X-A: a\x00b", b" folded",
                     b"Bad Name: x", b"Proxy\r: x", b"\r", b""]),
    st.binary(max_size=30),
)


@st.composite
def script_heads(draw) -> bytes:
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    return end.join(draw(st.lists(field_lines, max_size=6))) + end + end


@given(head=script_heads() | st.binary(max_size=200))
@example(head=b"Status: 200\nContent-Type: text/plain\nStatus: 201\n\n")
@example(head=b"Location: /x\nStatus: 302 Found\n\n")
@example(head=b"Status: 304\nContent-Length: 10\nContent-Type: a/b\n\n")
@example(head=b"Content-Type: text/plain\nContent-Length: 1\nContent-Length: 2\n\n")
@example(head=b"Content-Type: a\nX: \x80\xff\n\n")
def test_a_script_head_is_a_status_and_clean_fields_or_malformed(head):
    try:
        parsed = parse_head(head)
    except MalformedHead:
        return
    assert 200 <= parsed.status <= 599
    for name, value in parsed.headers:
        assert name and name.lower() not in HOP_BY_HOP and name.lower() != "status"
        assert not any(c in name + value for c in "\x00\r\n")
    if parsed.content_length is not None:
        assert parsed.content_length >= 0 and parsed.status not in (204, 304)
    if parsed.local_redirect:
        assert parsed.location is not None and parsed.location.startswith("/")
        assert not parsed.location.startswith("//")


@given(head=st.binary(max_size=200))
@example(head=b"HTTP/1.1 200 OK\nX: y\n\n")
@example(head=b"HTTP/1.1 200 OK\n\x00\n\n")
def test_an_nph_head_is_a_status_line_or_malformed(head):
    try:
        status, headers = parse_nph_head(head)
    except MalformedHead:
        return
    assert 100 <= status <= 599
    assert all(not any(c in n + v for c in "\x00\r\n") for n, v in headers)


@given(data=st.binary(max_size=100), cut=st.integers(0, 100))
def test_head_end_finds_the_same_blank_line_whatever_arrived_first(data, cut):
    """read_head looks again after every read: the end it finds never depends on the split."""
    end = head_end(data)
    prefix_end = head_end(data[:cut])
    if prefix_end is not None:
        assert prefix_end == end


header_names = st.sampled_from([
    "Host", "Authorization", "Proxy", "proxy", "PROXY", "Proxy-Authorization", "Content-Length",
    "Content-Type", "Transfer-Encoding", "X_Forwarded_For", "X-Forwarded-For", "Cookie", "Proxy\n",
    "X-A\r", "a.b", "~", "Accept",
]) | st.text(max_size=10)
header_values = st.sampled_from(["a\x00b", "a\rb", "a\nb", "\ud800", "\udc80", "caf\xe9", "\t x "]) \
    | st.text(max_size=20)


@given(method=st.sampled_from(["GET", "POST", "G\x00T", "\ud800"]) | st.text(max_size=6),
       target=st.sampled_from(["/cgi-bin/dump", "/cgi-bin/dump/a%0Ab?x", "/cgi-bin/dump/%FF?a+b",
                               "/cgi-bin/dump/\ud800"]) | st.text(max_size=20).map(lambda t: "/" + t),
       fields=st.lists(st.tuples(header_names, header_values), max_size=6))
@example(method="GET", target="/cgi-bin/dump", fields=[("Proxy\n", "http://evil/")])
@example(method="GET", target="/cgi-bin/dump", fields=[("X-A", "a\x00b")])
@example(method="GET", target="/cgi-bin/dump", fields=[("Cookie", "a\x00b")])
@example(method="GET", target="/cgi-bin/dump", fields=[("X-A", "\ud800")])
@example(method="G\x00T", target="/cgi-bin/dump", fields=[])
@example(method="GET", target="/cgi-bin/dump/a%0Ab", fields=[])
def test_an_environment_holds_no_control_character_and_no_hidden_header(method, target, fields):
    request = Request(method, target, headers=Headers(fields), remote_addr="127.0.0.1")
    if request_problem(request) is not None:
        return  # App.handle answers it 400 before any script is looked for
    decoded = decode_path(request.raw_path)
    path_info = decoded[len("/cgi-bin/dump"):] if decoded and decoded.startswith("/cgi-bin/dump") else ""
    env = build_environ(request, script_name="/cgi-bin/dump", path_info=path_info,
                        script_filename="/srv/cgi-bin/dump", document_root="/srv/www",
                        path_translated=None, content_length=None, server_software="cgibox/test")
    assert not FORBIDDEN_ENV & set(env)
    try:
        check_environ(env)
    except HTTPError as error:
        assert error.status == 400
        # only the decoded PATH_INFO can still hold what a script cannot be given
        assert any(c in path_info for c in "\r\n")
        return
    for name, value in env.items():
        assert name.isascii() and name.replace("_", "").isalnum() and not name[0].isdigit()
        assert not any(c in value for c in "\x00\r\n")
    for argument in query_argv(request.query):
        assert "\x00" not in argument
