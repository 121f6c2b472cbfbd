"""docs/recipes/, each run as written with the real client, on every front: git's smart HTTP
(anonymous clone, authenticated push, a 50 MB clone over protocol v2, a 20 MB push past the
server's --max-body; the random data is built once per run), cgit,
gitweb and fossil (clone and push). The recipes' own files are used, with /srv/... replaced by
this test's folders. Skipped, with the reason, where Debian's package is not installed (.ci/run
installs git, cgit, gitweb and fossil)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from tests.servers import REPO, Server

MakeServer = Callable[..., Server]

RECIPES = REPO / "docs" / "recipes"
GIT_BACKEND = Path("/usr/lib/git-core/git-http-backend")
CGIT = Path("/usr/lib/cgit/cgit.cgi")
GITWEB = Path("/usr/share/gitweb/gitweb.cgi")
FOSSIL = shutil.which("fossil")
PASSWORD = "push it"

need_git = pytest.mark.skipif(shutil.which("git") is None or not GIT_BACKEND.exists(),
                              reason="git (git-http-backend) is not installed")


def run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} failed ({result.returncode}): {result.stderr}")
    return result


def clean_git_env(base: Path) -> dict[str, str]:
    """A clean git: no system or user configuration, never a password prompt."""
    home = base / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CGIBOX_"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
               GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.org",
               GIT_COMMITTER_NAME="A", GIT_COMMITTER_EMAIL="a@example.org",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
    return env


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    return clean_git_env(tmp_path)


def recipe(name: str, folder: Path, **replace: str) -> Path:
    """docs/recipes/NAME copied into `folder`, with /srv/... paths replaced."""
    text = (RECIPES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text)
    path.chmod((RECIPES / name).stat().st_mode)
    return path


def harness_flags(config: Path) -> dict[str, Path]:
    """make_server always gives --root and --cgi-dir, which win over a config file: give the
    file's own values there, so the server runs as the recipe file alone would make it."""
    settings = tomllib.loads(config.read_text())
    return {key: Path(settings[key]) for key in ("root", "cgi_dir") if key in settings}


def project_work(work: Path, env: dict[str, str]) -> Path:
    """A work tree holding the project's one commit (the same commit every time: dates are fixed)."""
    run("git", "init", "-q", "-b", "main", str(work), env=env)
    (work / "README").write_text("the project\n")
    run("git", "add", "README", cwd=work, env=env)
    run("git", "commit", "-q", "-m", "first commit of the project", cwd=work, env=env)
    return work


def repositories(tmp_path: Path, env: dict[str, str]) -> Path:
    """/srv/git with one bare repository, project.git, holding one commit."""
    srv = tmp_path / "srv-git"
    work = project_work(tmp_path / "work", env)
    run("git", "clone", "-q", "--bare", str(work), str(srv / "project.git"), env=env)
    return srv


# -- git smart HTTP ---------------------------------------------------------------------------------------

BIG_REPO_MB = 50  # the clone: 50 MB that no compression shrinks
BIG_PUSH_MB = 20  # the push: past the server's own 10 MiB --max-body, within the mount's


def commit_random(work: Path, env: dict[str, str], megabytes: int, files: int, message: str) -> None:
    """Commit `megabytes` of os.urandom in `files` files: what git sends is really that big."""
    for n in range(files):
        (work / f"blob{n}.bin").write_bytes(os.urandom(megabytes * 1024 * 1024 // files))
    run("git", "add", ".", cwd=work, env=env)
    run("git", "commit", "-q", "-m", message, cwd=work, env=env)


def fast_random_blobs(work: Path, env: dict[str, str]) -> None:
    """Random data neither compresses nor deltas: `git add` stores it as it is, straight into a
    pack, which every clone and push then copies rather than compressing again (seconds saved)."""
    run("git", "config", "core.bigFileThreshold", "1m", cwd=work, env=env)
    run("git", "config", "core.compression", "0", cwd=work, env=env)


@pytest.fixture(scope="session")
def big_git(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Built once per run, read only afterwards: `big.git`, a bare repository of 50 MB in one
    pack, and `pusher`, a work tree whose branch `big` is the project's first commit plus a 20 MB
    commit, ready to push."""
    base = tmp_path_factory.mktemp("big-git")
    env = clean_git_env(base)
    big_work = base / "big-work"
    run("git", "init", "-q", "-b", "main", str(big_work), env=env)
    fast_random_blobs(big_work, env)
    commit_random(big_work, env, BIG_REPO_MB, 5, "fifty megabytes")
    bare = base / "big.git"
    run("git", "clone", "-q", "--bare", str(big_work), str(bare), env=env)
    pusher = project_work(base / "pusher", env)
    fast_random_blobs(pusher, env)
    run("git", "checkout", "-q", "-b", "big", cwd=pusher, env=env)
    commit_random(pusher, env, BIG_PUSH_MB, 2, "twenty megabytes")
    run("git", "checkout", "-q", "main", cwd=pusher, env=env)
    return {"bare": bare, "pusher": pusher}


@need_git
def test_git_smart_http(make_server: MakeServer, tmp_path: Path, git_env: dict[str, str],
                        big_git: dict[str, Path]) -> None:
    """docs/recipes/git.md through git.toml itself: a 50 MB clone over protocol v2 and an ordinary
    clone, anonymous push refused, alice pushes, and a 20 MB push past the server's 10 MiB
    --max-body lands (the mount's own max_body)."""
    srv = repositories(tmp_path, git_env)
    (srv / "big.git").symlink_to(big_git["bare"])  # read only: the clone never writes to it
    conf = tmp_path / "conf"
    conf.mkdir()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    (conf / "htpasswd").write_text(f"alice:{hashed}\n")
    www = tmp_path / "srv-www"
    www.mkdir()
    config = recipe("git.toml", conf, **{"/srv/git": str(srv), "/srv/www": str(www)})
    server = make_server(["--config", str(config)], **harness_flags(config))
    assert server.get("/cgi-bin/status").status == 404  # cgi_dir = "none": git's mount only
    url = f"{server.url}/git/project.git"

    big_clone = tmp_path / "big-clone"
    traced = run("git", "-c", "protocol.version=2", "clone", f"{server.url}/git/big.git", str(big_clone),
                 env={**git_env, "GIT_TRACE_PACKET": "1"})
    assert "< version 2" in traced.stderr  # the server spoke protocol v2
    received = sum((big_clone / f"blob{n}.bin").stat().st_size for n in range(5))
    assert received == BIG_REPO_MB * 1024 * 1024
    assert run("git", "fsck", "--full", cwd=big_clone, env=git_env).returncode == 0
    assert (run("git", "rev-parse", "HEAD", cwd=big_clone, env=git_env).stdout
            == run("git", "--git-dir", str(big_git["bare"]), "rev-parse", "main", env=git_env).stdout)

    clone = tmp_path / "clone"
    run("git", "-c", "protocol.version=2", "clone", url, str(clone), env=git_env)
    assert (clone / "README").read_text() == "the project\n"

    (clone / "more.txt").write_text("pushed\n")
    run("git", "add", "more.txt", cwd=clone, env=git_env)
    run("git", "commit", "-q", "-m", "second", cwd=clone, env=git_env)
    refused = run("git", "push", "origin", "main", cwd=clone, env=git_env, check=False)
    assert refused.returncode != 0  # anonymous: 401, and git has no password to give
    assert " 401 " in server.log() and "git-receive-pack" in server.log()
    authed = url.replace("http://", f"http://alice:{PASSWORD.replace(' ', '%20')}@")
    run("git", "push", authed, "main", cwd=clone, env=git_env)
    assert run("git", "--git-dir", str(srv / "project.git"), "log", "-1", "--format=%s",
               env=git_env).stdout == "second\n"

    # the 20 MB commit (built once per run) goes up as branch `big`: one 20 MB pack in one request
    pushed = run("git", "push", authed, "big", cwd=big_git["pusher"], env=git_env)
    assert "big -> big" in pushed.stderr
    landed = run("git", "--git-dir", str(srv / "project.git"), "rev-parse", "big", env=git_env).stdout
    assert landed == run("git", "rev-parse", "big", cwd=big_git["pusher"], env=git_env).stdout
    run("git", "--git-dir", str(srv / "project.git"), "fsck", "--full", env=git_env)


# -- cgit ------------------------------------------------------------------------------------------------

@need_git
@pytest.mark.skipif(not CGIT.exists(), reason="cgit is not installed")
def test_cgit(make_server: MakeServer, tmp_path: Path, git_env: dict[str, str]) -> None:
    """docs/recipes/cgit.md: the repository list, a log page, cgit's CSS from its own folder, and
    a clone through cgit's http clone."""
    srv = repositories(tmp_path, git_env)
    conf = tmp_path / "conf"
    conf.mkdir()
    recipe("cgitrc", conf, **{"/srv/git": str(srv)})
    config = recipe("cgit.toml", conf, **{"/srv/cgit/cgitrc": str(conf / "cgitrc")})
    server = make_server(["--config", str(config)], root=Path("/usr/share/cgit"),  # as cgit.md says
                         cgi_dir=harness_flags(config)["cgi_dir"])
    index = server.get("/cgit/")
    assert index.status == 200 and "project.git" in index.text, index.text[:500]
    log = server.get("/cgit/project.git/log/")
    assert log.status == 200 and "first commit of the project" in log.text
    assert server.get("/cgit.css").status == 200
    clone = tmp_path / "clone"
    run("git", "clone", f"{server.url}/cgit/project.git", str(clone), env=git_env)
    assert (clone / "README").read_text() == "the project\n"


# -- gitweb ----------------------------------------------------------------------------------------------

@need_git
@pytest.mark.skipif(not GITWEB.exists(), reason="gitweb is not installed")
def test_gitweb(make_server: MakeServer, tmp_path: Path, git_env: dict[str, str]) -> None:
    """docs/recipes/gitweb.md: Debian's gitweb folder served as it is, gitweb.cgi run in place
    beside its static files (--cgi-ext .cgi)."""
    srv = repositories(tmp_path, git_env)
    conf = recipe("gitweb.conf", tmp_path, **{"/srv/git": str(srv)})
    server = make_server(["--cgi-ext", ".cgi", "--cgi-env", f"GITWEB_CONFIG={conf}"],
                         root=GITWEB.parent)
    index = server.get("/gitweb.cgi")
    assert index.status == 200 and "project.git" in index.text, index.text[:500]
    log = server.get("/gitweb.cgi?p=project.git;a=log")
    assert log.status == 200 and "first commit of the project" in log.text
    assert server.get("/static/gitweb.css").status == 200
    assert "static/gitweb.css" in index.text


# -- fossil ----------------------------------------------------------------------------------------------

@pytest.mark.skipif(FOSSIL is None, reason="fossil is not installed")
def test_fossil_clone_and_push(make_server: MakeServer, tmp_path: Path) -> None:
    """docs/recipes/fossil.md: fossil's CGI control file mounted at /fossil; clone, commit, push
    as the repository's admin user (fossil's own logins)."""
    assert FOSSIL is not None
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")},
           "HOME": str(tmp_path), "USER": "admin"}
    srv = tmp_path / "srv-fossil"
    srv.mkdir()
    run(FOSSIL, "init", "--admin-user", "admin", str(srv / "project.fossil"), env=env)
    run(FOSSIL, "user", "password", "admin", "secret", "-R", str(srv / "project.fossil"), env=env)
    control = recipe("project.cgi", tmp_path, **{"/srv/fossil": str(srv), "/usr/bin/fossil": FOSSIL})
    www = tmp_path / "srv-www"
    www.mkdir()
    server = make_server(["--cgi-mount", f"/fossil={control}"], root=www)
    home = server.get("/fossil/timeline")
    assert home.status == 200 and "fossil" in home.text.lower()

    clone = tmp_path / "clone.fossil"
    run(FOSSIL, "clone", "--save-http-password", f"http://admin:secret@{server.host}:{server.port}/fossil",
        str(clone), env=env)
    work = tmp_path / "work"
    work.mkdir()
    run(FOSSIL, "open", str(clone), cwd=work, env=env)
    (work / "hello.txt").write_text("from the clone\n")
    run(FOSSIL, "add", "hello.txt", cwd=work, env=env)
    run(FOSSIL, "commit", "-m", "pushed through cgibox", "--no-warnings", cwd=work, env=env)
    run(FOSSIL, "push", cwd=work, env=env)
    timeline = run(FOSSIL, "timeline", "-R", str(srv / "project.fossil"), env=env).stdout
    assert "pushed through cgibox" in timeline
