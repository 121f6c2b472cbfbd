"""--webdav: RFC 4918 class 1 and 2 on the served tree. Every method of a URL under the root
comes here (GET and HEAD go on to core.static): OPTIONS, PROPFIND (depth 0 and 1; infinity is
403 propfind-finite-depth), PROPPATCH, MKCOL, PUT, COPY, MOVE, DELETE, LOCK and UNLOCK, with
the If: header and the lock table (core.dav_locks) checked before any change. Reads follow the
read rules and changes the --write rules, for every path a request touches (Destination too)."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import urlsplit

from cgibox.core import conditional
from cgibox.core import dav_props as props
from cgibox.core import dav_xml as dx
from cgibox.core.access import ALLOW as ALLOWED
from cgibox.core.access import READ, WRITE, Access
from cgibox.core.dav_locks import (
    Lock,
    LockTable,
    covering,
    list_holds,
    norm,
    parse_if,
    parse_timeout,
    submitted_tokens,
    within,
)
from cgibox.core.dav_tree import Tree
from cgibox.core.errors import HTTPError, refuse_method
from cgibox.core.paths import decode_path, resolve_stat, safe_segments, stat_error_status, url_segment
from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.static import StaticFiles
from cgibox.core.writes import Writes

ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK"
DAV_METHODS = frozenset(ALLOW.replace(",", "").split()) - {"GET", "HEAD"}
# a PROPFIND of a folder with more members is streamed (about 700 bytes a member)
STREAM_PAST = 2000

# what a 405 offers where nothing may be changed
READ_ALLOW = "OPTIONS, GET, HEAD, PROPFIND"


class DavError(Exception):
    """An answer with an RFC 4918 error body (<D:error><D:condition/></D:error>)."""

    def __init__(self, status: int, condition: str) -> None:
        super().__init__(status, condition)
        self.status = status
        self.condition = condition


def href(decoded: str, is_dir: bool) -> str:
    """The URL of a decoded path: each segment's raw bytes percent-encoded; folders end in /."""
    segments = [segment for segment in decoded.split("/") if segment]
    path = "/" + "/".join(url_segment(segment) for segment in segments)
    return path + "/" if is_dir and path != "/" else path


def xml_response(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", dx.XML_TYPE), ("Content-Length", str(len(body))),
                             *(headers or [])], body)


def empty(status: int, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Length", "0"), *(headers or [])], b"")


class WebDAV:
    """The WebDAV methods of one App (one lock table for every process and front)."""

    def __init__(self, root: str, static: StaticFiles, exclude: tuple[str, ...], locks: LockTable,
                 access: Access, writes: Writes) -> None:
        self.root = root
        self.static = static
        self.exclude = exclude
        self.locks = locks
        self.access = access
        self.writes = writes
        self.tree = Tree(root, exclude)
        # the methods the router hands here (GET, HEAD and POST go their usual way)
        self.methods = DAV_METHODS

    def handle(self, request: Request, decoded: str) -> Response:
        method = request.method
        if method in ("GET", "HEAD"):
            return self.static.serve(request, decoded)
        handler = getattr(self, "do_" + method, None) if method in DAV_METHODS else None
        if handler is None:
            raise refuse_method(method, ALLOW)
        try:
            response: Response = handler(request, decoded)
        except DavError as error:
            return xml_response(error.status, dx.error_body(error.condition))
        except OSError as error:
            # a change the file system refused half-way: what it means for the client
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise HTTPError(507, "the disk is full") from None
            if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise HTTPError(403, "the file system refused the change") from None
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                raise HTTPError(409, "a folder on the way changed meanwhile") from None
            raise
        return response

    # -- what the methods share ---------------------------------------------------------------

    def find(self, decoded: str) -> tuple[str, os.stat_result]:
        """The resource's real path and stat; 404 when missing or not reachable."""
        found = resolve_stat(self.root, decoded, self.exclude)
        if found is None:
            raise HTTPError(404)
        real, st = found
        if st is None:
            try:
                st = os.stat(real)
            except OSError as error:
                raise HTTPError(stat_error_status(error)) from None
        if not (stat_mod.S_ISDIR(st.st_mode) or stat_mod.S_ISREG(st.st_mode)):
            raise HTTPError(404)
        if decoded.endswith("/") and not stat_mod.S_ISDIR(st.st_mode):
            raise HTTPError(404)
        return real, st

    def etag_of(self, decoded: str) -> str | None:
        try:
            _, st = self.find(decoded)
        except HTTPError:
            return None
        return conditional.make_etag(st)

    def read_xml(self, request: Request) -> ET.Element | None:
        return dx.parse(dx.read_body(request.body, request.body_length))

    @staticmethod
    def depth(request: Request, default: str, allowed: tuple[str, ...]) -> str:
        value = (request.headers.get("depth") or default).strip().lower()
        if value not in allowed:
            raise HTTPError(400, f"Depth: {value} is not taken here")
        return value

    def check_conditions(self, request: Request, touched: list[tuple[str, bool]]) -> None:
        """RFC 4918 10.4 and 7: the If: header must hold (else 412), and every lock on a path
        the request changes (with its members when the flag says so) must have its token
        submitted by the user who took it (else 423)."""
        lists = parse_if(request.headers.get("if"))
        locks = self.locks.snapshot()
        if lists:
            applicable = held = False
            # an untagged list speaks of the request's resource and of the locks its change
            # touches (a new name's folder: RFC 4918 7.5)
            here = [path for path, _ in touched] + [request_path(request) or "/"]
            for item in lists:
                target = request_path(request) if item.resource is None else tagged_path(item.resource)
                if target is None:
                    continue
                applicable = True
                tokens = {lock.token for path in (here if item.resource is None else [target])
                          for lock in covering(locks, path)
                          if lock.user is None or lock.user == request.remote_user}
                if list_holds(item.conditions, tokens, self.etag_of(target)):
                    held = True
                    break
            if applicable and not held:
                raise HTTPError(412, "the If header's conditions do not hold")
        submitted = submitted_tokens(lists)
        for path, members in touched:
            relevant = within(locks, path) if members else covering(locks, path)
            roots: dict[str, list[Lock]] = {}
            for lock in relevant:
                roots.setdefault(lock.path, []).append(lock)
            for group in roots.values():
                if not any(lock.token in submitted and (lock.user is None or lock.user == request.remote_user)
                           for lock in group):
                    raise DavError(423, "lock-token-submitted")

    def may(self, request: Request, decoded: str, kind: str) -> None:
        """core.access's word for this path (asked for every path a request touches): raises the
        401, 403 or 405 (with the methods a read-only place takes) that refuses it."""
        self.access.check(request, kind, decoded, allow=READ_ALLOW)

    def destination(self, request: Request) -> str:
        """The Destination header's decoded path; 400 when missing or malformed, 502 when it
        names another server."""
        value = request.headers.get("destination")
        if not value:
            raise HTTPError(400, "a Destination header is needed")
        parts = urlsplit(value.strip())
        if parts.scheme or parts.netloc:
            host = request.headers.get("host") or ""
            if parts.netloc.lower() != host.lower() and parts.hostname not in (None, request.server_name):
                raise HTTPError(502, "the Destination names another server")
        decoded = decode_path(parts.path or "/")
        if decoded is None or safe_segments(decoded) is None:
            raise HTTPError(400, "the Destination cannot be written")
        return decoded

    # -- OPTIONS ------------------------------------------------------------------------------

    def do_OPTIONS(self, request: Request, decoded: str) -> Response:
        return empty(200, [("DAV", "1, 2"), ("Allow", ALLOW), ("MS-Author-Via", "DAV")])

    # -- PROPFIND ----------------------------------------------------------------------------

    def do_PROPFIND(self, request: Request, decoded: str) -> Response:
        depth = self.depth(request, "infinity", ("0", "1", "infinity"))
        if depth == "infinity":
            raise DavError(403, "propfind-finite-depth")
        real, st = self.find(decoded)
        mode, names = parse_propfind(self.read_xml(request))
        locks = self.locks.snapshot()
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        base = norm(decoded)
        base_href = href(base, is_dir)
        first = self.prop_response(base, base_href, real, st, mode, names, locks)
        if depth == "0" or not is_dir:
            return xml_response(207, dx.multistatus([first]))
        members = sorted(self.tree.members(real))
        prefix = base_href if base_href.endswith("/") else base_href + "/"

        def member_answers() -> Iterator[str]:
            for name, member_real, member_st in members:
                member = base.rstrip("/") + "/" + name
                if not self.may_read(request, member):
                    continue
                url = prefix + url_segment(name) + ("/" if stat_mod.S_ISDIR(member_st.st_mode) else "")
                yield self.prop_response(member, url, member_real, member_st, mode, names, locks)

        if len(members) <= STREAM_PAST:
            return xml_response(207, dx.multistatus([first, *member_answers()]))
        # a big folder's answer is sent as it is made, never held whole (chunked, or until close)
        return Response(207, [("Content-Type", dx.XML_TYPE)], dx.multistatus_stream(first, member_answers()))

    def may_read(self, request: Request, decoded: str) -> bool:
        """Whether a folder member is shown to this reader (no login asked for on its account)."""
        return self.access.answer(request, READ, decoded) == ALLOWED

    def prop_response(self, decoded: str, url: str, real: str, st: os.stat_result, mode: str,
                      names: list[str], locks: list[Lock]) -> str:
        """One <D:response> of a PROPFIND: the properties found (200) and those missing (404)."""
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        here = covering(locks, decoded) if locks else []
        if mode == "allprop" and not names and not here:
            # the common answer (a client listing a folder), written in one go
            return props.allprop_response(url, real, st, is_dir,
                                          None if is_dir else self.static.content_type(real))
        resource = props.Resource(real, st, is_dir, None if is_dir else self.static.content_type(real), here,
                                  {lock.token: href(lock.path, False) for lock in here})
        found: list[str] = []
        missing: list[str] = []
        if mode == "propname":
            found = [dx.element(name) for name in props.ALLPROP_LIVE
                     if props.live_value(name, resource) is not None]
            found += [dx.element(name) for name in props.read_dead(real)]
        else:
            dead = props.read_dead(real) if mode == "allprop" or any(
                name not in props.LIVE for name in names) else {}
            wanted = [*props.ALLPROP_LIVE, *dead, *names] if mode == "allprop" else names
            seen = set()
            for name in wanted:
                if name in seen:
                    continue
                seen.add(name)
                value = props.live_value(name, resource)
                if value is not None:
                    found.append(dx.element(name, value))
                elif name in dead:
                    found.append(dead[name])
                elif mode == "prop":
                    missing.append(dx.tags(name)[2])
        inner = dx.propstat(found, 200) if found or not missing else ""
        if missing:
            inner += dx.propstat(missing, 404)
        return dx.response(url, inner)

    # -- PROPPATCH ---------------------------------------------------------------------------

    def do_PROPPATCH(self, request: Request, decoded: str) -> Response:
        self.may(request, decoded, WRITE)
        real, st = self.find(decoded)
        self.check_conditions(request, [(decoded, False)])
        changes = parse_propertyupdate(self.read_xml(request))
        protected = [name for _, name, _ in changes if name in props.LIVE]
        names = list(dict.fromkeys(name for _, name, _ in changes))
        if protected:
            inner = dx.propstat([dx.element(name) for name in dict.fromkeys(protected)], 403)
            rest = [dx.element(name) for name in names if name not in protected]
            if rest:
                inner += dx.propstat(rest, 424)
        else:
            try:
                props.change_dead(real, changes)
                status = 200
            except props.DeadPropsError:
                status = 507
            inner = dx.propstat([dx.element(name) for name in names], status)
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        return xml_response(207, dx.multistatus([dx.response(href(decoded, is_dir), inner)]))

    # -- LOCK and UNLOCK ---------------------------------------------------------------------

    def do_LOCK(self, request: Request, decoded: str) -> Response:
        self.may(request, decoded, WRITE)
        timeout = parse_timeout(request.headers.get("timeout"))
        info = self.read_xml(request)
        if info is None:
            return self.refresh(request, decoded, timeout)
        exclusive, owner = parse_lockinfo(info)
        depth = self.depth(request, "infinity", ("0", "infinity"))
        self.check_conditions(request, [])
        status = 200
        place = None
        try:
            self.find(decoded)
        except HTTPError as error:
            if error.status != 404:
                raise
            place = self.tree.place(decoded)
            if place.lstat() is not None:
                raise
            # RFC 4918 9.10.4: a lock on an unmapped URL makes an empty resource
            os.close(os.open(place.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            status = 201
        try:
            lock = self.locks.acquire(decoded, depth, exclusive, owner, request.remote_user, timeout)
        except HTTPError:
            if place is not None:
                os.unlink(place.path)
            raise DavError(423, "no-conflicting-lock") from None
        return self.lock_answer(status, lock)

    def refresh(self, request: Request, decoded: str, timeout: int) -> Response:
        tokens = submitted_tokens(parse_if(request.headers.get("if")))
        for token in tokens:
            lock = self.locks.refresh(token, decoded, timeout)
            if lock is not None:
                return self.lock_answer(200, lock, with_token=False)
        raise HTTPError(412 if tokens else 400, "a lock refresh names its lock in the If header")

    @staticmethod
    def lock_answer(status: int, lock: Lock, with_token: bool = True) -> Response:
        body = dx.document("<D:prop><D:lockdiscovery>" + props.active_lock(lock, href(lock.path, False))
                           + "</D:lockdiscovery></D:prop>")
        headers = [("Lock-Token", f"<{lock.token}>")] if with_token else []
        return xml_response(status, body, headers)

    def do_UNLOCK(self, request: Request, decoded: str) -> Response:
        self.may(request, decoded, WRITE)
        token = (request.headers.get("lock-token") or "").strip()
        if not (token.startswith("<") and token.endswith(">")):
            raise HTTPError(400, "UNLOCK needs a Lock-Token header")
        status = self.locks.release(token[1:-1], decoded, request.remote_user)
        if status == 409:
            raise DavError(409, "lock-token-matches-request-uri")
        if status == 403:
            raise HTTPError(403, "that lock is another user's")
        return empty(204)

    # -- changes of the tree -----------------------------------------------------------------

    # PUT, MKCOL, DELETE and MOVE are core.writes' (the same landing, names and answers as
    # without --webdav); WebDAV adds Depth, the If: header and the locks before them, and keeps
    # the lock table in step after them

    def do_MKCOL(self, request: Request, decoded: str) -> Response:
        self.may(request, decoded, WRITE)
        self.check_conditions(request, [(decoded, False), (parent_of(decoded), False)])
        return self.logged(request, decoded, self.writes.mkcol(request, decoded))

    def do_DELETE(self, request: Request, decoded: str) -> Response:
        self.may(request, decoded, WRITE)
        self.depth(request, "infinity", ("infinity",))
        self.check_conditions(request, [(decoded, True), (parent_of(decoded), False)])
        response = self.writes.delete(decoded)
        self.locks.drop_under(decoded)
        return self.logged(request, decoded, response)

    def do_PUT(self, request: Request, decoded: str) -> Response:
        self.may(request, decoded, WRITE)
        place = self.tree.place(decoded)
        existed = place.lstat() is not None
        touched = [(decoded, False)] + ([] if existed else [(parent_of(decoded), False)])
        self.check_conditions(request, touched)
        return self.logged(request, decoded, self.writes.put(request, decoded))

    def do_MOVE(self, request: Request, decoded: str) -> Response:
        target = self.destination(request)
        self.may(request, decoded, WRITE)
        self.may(request, target, WRITE)
        _, st = self.find(decoded)
        if stat_mod.S_ISDIR(st.st_mode):
            self.depth(request, "infinity", ("infinity",))
        existed = self.tree.place(target).lstat() is not None
        # a name added to or taken from a folder changes the folder (RFC 4918 7.5: a depth-0 lock
        # on it protects its members' names)
        touched = [(target, True), (decoded, True), (parent_of(decoded), False)]
        if not existed:
            touched.append((parent_of(target), False))
        self.check_conditions(request, touched)
        response = self.writes.move(request, decoded)
        self.locks.drop_under(decoded)
        if existed:
            self.locks.drop_under(target)
        return self.logged(request, decoded, response, f" -> {request.headers.get('destination')!r}")

    def do_COPY(self, request: Request, decoded: str) -> Response:
        target = self.destination(request)
        overwrite = (request.headers.get("overwrite") or "T").strip().upper()
        if overwrite not in ("T", "F"):
            raise HTTPError(400, "Overwrite is T or F")
        self.may(request, decoded, READ)
        self.may(request, target, WRITE)
        real, st = self.find(decoded)
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        depth = self.depth(request, "infinity", ("0", "infinity"))
        if norm(decoded) == norm(target):
            raise HTTPError(403, "the source and the destination are the same")
        place = self.tree.place(target)
        if is_dir and (place.path == real or place.path.startswith(real.rstrip("/") + "/")):
            raise HTTPError(403, "a folder cannot be copied into itself")
        existed = place.lstat() is not None
        touched = [(target, True)] + ([] if existed else [(parent_of(target), False)])
        self.check_conditions(request, touched)
        if existed:
            if overwrite == "F":
                raise HTTPError(412, "the destination exists and Overwrite is F")
            self.tree.delete(place.path)
            self.locks.drop_under(target)
        self.tree.copy(real, place.path, depth)
        response = empty(204 if existed else 201, [] if existed else [("Location", href(target, is_dir))])
        return self.logged(request, decoded, response, f" -> {request.headers.get('destination')!r}")

    def logged(self, request: Request, decoded: str, response: Response, extra: str = "") -> Response:
        """Every change is logged, as core.writes logs its own."""
        self.writes.log(request, decoded, response.status, extra)
        return response


def parent_of(decoded: str) -> str:
    """The folder a path's name is in ("/" for a name in the root)."""
    return norm(decoded).rsplit("/", 1)[0] or "/"


def request_path(request: Request) -> str | None:
    return decode_path(request.raw_path)


def tagged_path(resource: str) -> str | None:
    """A tagged list's resource (an absolute URL or a path) as a decoded path."""
    return decode_path(urlsplit(resource).path or "/")


# -- request bodies ---------------------------------------------------------------------------


def parse_propfind(root: ET.Element | None) -> tuple[str, list[str]]:
    """("allprop" | "propname" | "prop", property names) of a PROPFIND body (none: allprop)."""
    if root is None:
        return "allprop", []
    if root.tag != dx.dav("propfind") or len(root) == 0:
        raise HTTPError(400, "a PROPFIND body is a DAV:propfind element")
    first = root[0]
    if first.tag == dx.dav("propname"):
        return "propname", []
    if first.tag == dx.dav("allprop"):
        include = root.find(dx.dav("include"))
        return "allprop", [child.tag for child in include] if include is not None else []
    if first.tag == dx.dav("prop"):
        return "prop", [child.tag for child in first]
    raise HTTPError(400, "a DAV:propfind holds prop, allprop or propname")


def parse_propertyupdate(root: ET.Element | None) -> list[tuple[str, str, str]]:
    """("set" | "remove", name, the property's XML) in document order."""
    if root is None or root.tag != dx.dav("propertyupdate"):
        raise HTTPError(400, "a PROPPATCH body is a DAV:propertyupdate element")
    changes = []
    for action in root:
        if action.tag not in (dx.dav("set"), dx.dav("remove")):
            raise HTTPError(400, "DAV:propertyupdate holds set and remove")
        kind = "set" if action.tag == dx.dav("set") else "remove"
        for prop in action.findall(dx.dav("prop")):
            for item in prop:
                changes.append((kind, item.tag, dx.serialize(item)))
    if not changes:
        raise HTTPError(400, "DAV:propertyupdate changes nothing")
    return changes


def parse_lockinfo(root: ET.Element) -> tuple[bool, str]:
    """(exclusive?, the owner element's XML) of a LOCK body."""
    if root.tag != dx.dav("lockinfo"):
        raise HTTPError(400, "a LOCK body is a DAV:lockinfo element")
    scope = root.find(dx.dav("lockscope"))
    kind = root.find(dx.dav("locktype"))
    if scope is None or len(scope) != 1 or kind is None or kind.find(dx.dav("write")) is None:
        raise HTTPError(400, "DAV:lockinfo needs a lockscope and a write locktype")
    exclusive = scope[0].tag == dx.dav("exclusive")
    if not exclusive and scope[0].tag != dx.dav("shared"):
        raise HTTPError(400, "a lockscope is exclusive or shared")
    owner = root.find(dx.dav("owner"))
    owner_xml = ""
    if owner is not None:
        owner_xml = "<D:owner>" + dx.inner_xml(owner) + "</D:owner>"
    return exclusive, owner_xml
