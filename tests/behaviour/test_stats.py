"""/healthz, /stats and /metrics on every front: counts are for the whole server (forked children
and workers included) and uptime runs from the server's start."""

from __future__ import annotations

import re
import time

from prometheus_client.parser import text_string_to_metric_families

CONTRACT_KEYS = {"uptime_seconds", "started_at", "requests_total", "responses", "bytes_sent", "cgi_runs",
                 "front", "version", "requests_per_minute"}


def wait_for(predicate, timeout: float = 10.0):
    """Counters are added after a response is sent: poll briefly for them (bounded)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = predicate()
    return value


def test_healthz(server):
    reply = server.get("/healthz")
    assert reply.status == 200 and reply.body.strip() == b"ok"
    assert reply.header("Content-Type").startswith("text/plain")


def test_stats_json_has_every_contract_key(server):
    for reply in (server.get("/stats?format=json"), server.get("/stats", Accept="application/json")):
        assert reply.status == 200 and reply.header("Content-Type") == "application/json"
        document = reply.json()
        assert set(document) == CONTRACT_KEYS
        assert document["front"] == server.front.split("-")[0]
        assert isinstance(document["responses"], dict)
        assert all(code.isdigit() and count > 0 for code, count in document["responses"].items())
        assert document["started_at"].endswith("+00:00")


def test_stats_html(server):
    reply = server.get("/stats")
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=utf-8"
    for word in ("Requests", "Bytes sent", "CGI runs", "second"):
        assert word in reply.text


def test_requests_are_counted_across_processes(server):
    """N requests on N connections (N children on the forking front, several workers on
    gunicorn): requests_total grows by at least N, and each status is counted."""
    before = server.stats()
    n = 12
    for i in range(n):
        assert server.get("/hello.txt" if i % 2 else f"/missing-{i}").status in (200, 404)
    target = before["requests_total"] + n
    after = wait_for(lambda: (s := server.stats())["requests_total"] >= target + 1 and s)
    assert after, f"requests_total did not reach {target}: {server.stats()}"
    grew = lambda code: after["responses"].get(code, 0) - before["responses"].get(code, 0)  # noqa: E731
    assert grew("200") >= n // 2 and grew("404") >= n // 2
    assert after["bytes_sent"] - before["bytes_sent"] >= (n // 2) * len(b"hello, world\n")


def test_requests_on_one_keep_alive_connection_are_counted(server):
    before = server.stats()["requests_total"]
    conn = server.connection()
    try:
        for _ in range(5):
            conn.request("GET", "/hello.txt")
            conn.getresponse().read()
    finally:
        conn.close()
    assert wait_for(lambda: server.stats()["requests_total"] >= before + 5)


def test_uptime_is_the_servers_not_a_process(server):
    first = server.stats()
    time.sleep(1.1)
    second = server.stats()  # another connection: another child / perhaps another worker
    assert second["started_at"] == first["started_at"]
    assert second["uptime_seconds"] - first["uptime_seconds"] >= 1.0


def test_uptime_counts_from_the_start(make_server):
    began = time.time()
    server = make_server()
    time.sleep(1.2)
    uptime = server.stats()["uptime_seconds"]
    assert 1.0 <= uptime <= time.time() - began + 1


def test_metrics(server):
    server.get("/missing-for-metrics")
    reply = server.get("/metrics")
    assert reply.status == 200 and reply.header("Content-Type").startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.text)}
    for name in ("cgibox_info", "cgibox_uptime_seconds", "cgibox_requests", "cgibox_responses",
                 "cgibox_sent_bytes", "cgibox_cgi_runs"):
        assert name in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families.values() for s in family.samples}
    assert samples[("cgibox_requests_total", ())] >= 1
    assert samples[("cgibox_responses_total", (("code", "404"),))] >= 1
    info = [s for s in families["cgibox_info"].samples][0]
    assert info.labels["front"] == server.front.split("-")[0]
    stats = server.stats()
    assert stats["requests_total"] >= samples[("cgibox_requests_total", ())]


def test_requests_per_minute_counts_every_process(server):
    """The per-minute series (oldest first) is kept in the shared file too: requests served by
    forked children and by several workers all land in the last minutes."""
    before = server.stats()["requests_per_minute"]
    assert len(before) == 60 and all(isinstance(count, int) for count in before)
    n = 10
    for _ in range(n):
        assert server.get("/hello.txt").status == 200
    # the minute may turn over meanwhile: compare the whole hour, counting the /stats reads too
    after = wait_for(lambda: (s := server.stats())["requests_total"] and
                     sum(s["requests_per_minute"]) >= sum(before) + n and s)
    assert after, f"the series did not grow by {n}: {server.stats()['requests_per_minute']}"
    assert after["requests_per_minute"][-1] >= 1


def test_stats_page_has_dates_in_words_and_a_chart(server):
    server.get("/hello.txt")
    html = server.get("/stats").text
    assert re.search(r'<time datetime="[^"]+\+00:00" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">'
                     r"(just now|\d+ (second|minute|hour|day)s? ago)</time>", html)
    assert '<svg class="chart"' in html and 'class="bar"' in html


def duration_counts(server) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(server.get("/metrics").text)}
    return {s.labels["route"]: s.value for s in families["cgibox_request_duration_seconds"].samples
            if s.name == "cgibox_request_duration_seconds_count"}


def test_metrics_time_requests_by_route_kind(make_server):
    """Each route kind counts what answered, in whichever process (child, worker) answered it."""
    server = make_server()
    sent = {"file": ["/hello.txt", "/index-dir/"], "listing": ["/plain-dir/", "/plain-dir/?format=json"],
            "cgi": ["/cgi-bin/hello"], "error": ["/missing", "/cgi-bin/no-such-script"],
            "internal": ["/healthz", "/stats"]}
    for paths in sent.values():
        for path in paths:
            assert server.get(path).status in (200, 404)
    # counted once each response is over; /metrics polls add to "internal" after they answer
    timed = ("file", "listing", "cgi", "error")
    want = {kind: len(sent[kind]) for kind in timed}
    counts = wait_for(lambda: (c := duration_counts(server)) and {k: c[k] for k in timed} == want and c)
    assert counts, (duration_counts(server), want)
    assert counts["internal"] >= len(sent["internal"])

    families = {f.name: f for f in text_string_to_metric_families(server.get("/metrics").text)}
    buckets = [s for s in families["cgibox_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["route"] == "cgi"]
    assert [s.labels["le"] for s in buckets][-1] == "+Inf" and buckets[-1].value == 1
    assert all(a.value <= b.value for a, b in zip(buckets, buckets[1:], strict=False))  # cumulative
    build = families["cgibox_build_info"].samples[0]
    assert build.labels["front"] == server.front.split("-")[0] and build.labels["version"]
    started = families["process_start_time_seconds"].samples[0].value
    assert abs(started - (time.time() - server.stats()["uptime_seconds"])) < 5


def test_stats_page_names_one_instance_and_links_to_the_fleet(make_server):
    plain = make_server()
    assert "one instance" in plain.get("/stats").text and "fleet" not in plain.get("/stats").text
    url = "https://grafana.example/d/cgibox?var-job=cgibox&x=<y>"
    linked = make_server(["--fleet-url", url])
    page = linked.get("/stats").text
    assert "one instance" in page
    assert 'href="https://grafana.example/d/cgibox?var-job=cgibox&amp;x=&lt;y&gt;"' in page
