"""The smallest proof that every front starts and answers."""


def test_healthz(server):
    reply = server.get("/healthz")
    assert reply.status == 200
    assert reply.body == b"ok\n"


def test_file(server):
    reply = server.get("/hello.txt")
    assert reply.status == 200
    assert reply.body == b"hello, world\n"
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
