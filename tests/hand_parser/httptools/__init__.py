"""Put first on PYTHONPATH (CGIBOX_TEST_PARSER=hand, tests/servers.py), this stands in for an
httptools that is not installed: cgibox's fast path (core/fast_head.py) stays off, and the hand
parser alone reads every head of the servers the tests start."""

raise ImportError("httptools is left out: the hand parser serves alone (CGIBOX_TEST_PARSER=hand)")
