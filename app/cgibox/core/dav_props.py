"""WebDAV properties: the live ones, computed from a file's stat (the same ETag and type a GET
gives), and the dead ones a client sets with PROPPATCH, kept in one extended attribute of the
file or folder itself (`user.cgibox.dav`: JSON, property name -> its XML).

Why an extended attribute: the properties then belong to the file, not to a name. They survive a
restart (the state folder does not); a MOVE (a rename) keeps them with no work; a DELETE takes
them along; a COPY copies them (copy_dead). A file replaced by PUT is a new file: its properties
start empty, as a new resource. File systems without user extended attributes (some network
mounts, tmpfs before Linux 6.6) answer PROPPATCH 507 for each property; nothing else changes."""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from cgibox.core import conditional
from cgibox.core.dav_locks import Lock
from cgibox.core.dav_xml import dav, element, text

XATTR = "user.cgibox.dav"
# ext4 keeps every extended attribute of a file in one block: stay well under it
MAX_DEAD_BYTES = 3072

RESOURCETYPE = dav("resourcetype")
GETETAG = dav("getetag")
LOCKDISCOVERY = dav("lockdiscovery")
SUPPORTEDLOCK = dav("supportedlock")
# live properties an allprop answer lists (RFC 4918 9.1; quota ones only when named, RFC 4331 3)
ALLPROP_LIVE = (RESOURCETYPE, dav("getcontentlength"), dav("getlastmodified"), dav("creationdate"),
                GETETAG, dav("getcontenttype"), SUPPORTEDLOCK, LOCKDISCOVERY)
QUOTA = (dav("quota-available-bytes"), dav("quota-used-bytes"))

SUPPORTED_LOCK_XML = (
    "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>")


class DeadPropsError(OSError):
    """The file system would not keep the properties (no user xattrs, or no room)."""


def read_dead(real: str) -> dict[str, str]:
    """The dead properties of a file or folder: Clark name -> the property element's XML."""
    try:
        data = os.getxattr(real, XATTR)
    except OSError:
        return {}  # none set (ENODATA), or a file system without them
    try:
        props = json.loads(data)
    except ValueError:
        return {}
    return props if isinstance(props, dict) else {}


def write_dead(real: str, props: dict[str, str]) -> None:
    """Keep `props` as the file's dead properties (all of them, replacing the old ones)."""
    try:
        if not props:
            try:
                os.removexattr(real, XATTR)
            except OSError as error:
                if error.errno != errno.ENODATA:
                    raise
            return
        data = json.dumps(props, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        if len(data) > MAX_DEAD_BYTES:
            raise DeadPropsError(errno.ENOSPC, "dead properties past their room")
        os.setxattr(real, XATTR, data)
    except DeadPropsError:
        raise
    except OSError as error:
        raise DeadPropsError(error.errno, str(error)) from None


def change_dead(real: str, changes: list[tuple[str, str, str]]) -> None:
    """PROPPATCH: ("set" | "remove", name, XML) in order, all or none, under an flock of the file
    so that two at once do not lose each other's properties (every process sees the flock)."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise DeadPropsError(error.errno, str(error)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        props = read_dead(real)
        for action, name, value in changes:
            if action == "set":
                props[name] = value
            else:
                props.pop(name, None)
        write_dead(real, props)
    finally:
        os.close(fd)  # releases the flock


def copy_dead(source: str, target: str) -> None:
    """COPY: the copy gets the source's dead properties (and drops any the target had)."""
    props = read_dead(source)
    try:
        write_dead(target, props)
    except DeadPropsError:
        pass  # the copy's bytes landed; its properties could not follow on this file system


def disk_usage(real: str) -> tuple[int, int] | None:
    try:
        usage = shutil.disk_usage(real)
    except OSError:
        return None
    return usage.free, usage.used


@dataclass(slots=True)
class Resource:
    """What the live properties of one resource are computed from."""

    real: str
    st: os.stat_result
    is_dir: bool
    content_type: str | None
    locks: list[Lock]  # those covering it
    lock_hrefs: dict[str, str]  # token -> the URL of the lock's root


@functools.lru_cache(maxsize=4096)
def _iso_date(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def _quota(index: int) -> Callable[[Resource], str | None]:
    def value(resource: Resource) -> str | None:
        usage = disk_usage(resource.real) if resource.is_dir else None
        return None if usage is None else str(usage[index])
    return value


# live property -> its inner XML for a resource (None: the resource has no such property)
LIVE_VALUES: dict[str, Callable[[Resource], str | None]] = {
    RESOURCETYPE: lambda r: "<D:collection/>" if r.is_dir else "",
    dav("getcontentlength"): lambda r: None if r.is_dir else str(r.st.st_size),
    dav("getcontenttype"): lambda r: None if r.is_dir else text(r.content_type or "application/octet-stream"),
    dav("getlastmodified"): lambda r: conditional.http_date(r.st.st_mtime),
    dav("creationdate"): lambda r: _iso_date(int(r.st.st_ctime)),
    GETETAG: lambda r: text(conditional.make_etag(r.st)),
    SUPPORTEDLOCK: lambda r: SUPPORTED_LOCK_XML,
    LOCKDISCOVERY: lambda r: "".join(active_lock(lock, r.lock_hrefs.get(lock.token, "")) for lock in r.locks),
    QUOTA[0]: _quota(0),
    QUOTA[1]: _quota(1),
}
LIVE = frozenset(LIVE_VALUES)


_OK = "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"


def allprop_response(url: str, real: str, st: os.stat_result, is_dir: bool, content_type: str | None) -> str:
    """The <D:response> to allprop for an unlocked resource: what the general path writes for
    ALLPROP_LIVE and the dead properties, in that order, at a fraction of its cost."""
    dead = "".join(read_dead(real).values())
    modified = conditional.http_date(st.st_mtime)
    created = _iso_date(int(st.st_ctime))
    etag = text(conditional.make_etag(st))
    if is_dir:
        kind = "<D:resourcetype><D:collection/></D:resourcetype>"
        sized = typed = ""
    else:
        kind = "<D:resourcetype/>"
        sized = f"<D:getcontentlength>{st.st_size}</D:getcontentlength>"
        typed = f"<D:getcontenttype>{text(content_type or 'application/octet-stream')}</D:getcontenttype>"
    return (f"<D:response><D:href>{url}</D:href><D:propstat><D:prop>{kind}{sized}"
            f"<D:getlastmodified>{modified}</D:getlastmodified><D:creationdate>{created}</D:creationdate>"
            f"<D:getetag>{etag}</D:getetag>{typed}<D:supportedlock>{SUPPORTED_LOCK_XML}</D:supportedlock>"
            f"<D:lockdiscovery/>{dead}</D:prop>{_OK}")


def live_value(name: str, resource: Resource) -> str | None:
    """A live property's inner XML for this resource, or None when it has none."""
    compute = LIVE_VALUES.get(name)
    return None if compute is None else compute(resource)


def active_lock(lock: Lock, root_href: str) -> str:
    """One <D:activelock> (RFC 4918 14.1)."""
    scope = "<D:exclusive/>" if lock.exclusive else "<D:shared/>"
    remaining = max(0, int(lock.expires - time.time()))
    return ("<D:activelock><D:locktype><D:write/></D:locktype>"
            f"<D:lockscope>{scope}</D:lockscope><D:depth>{lock.depth}</D:depth>"
            f"{lock.owner}<D:timeout>Second-{remaining}</D:timeout>"
            f"<D:locktoken><D:href>{text(lock.token)}</D:href></D:locktoken>"
            f"<D:lockroot><D:href>{text(root_href)}</D:href></D:lockroot></D:activelock>")


def prop_xml(name: str, inner: str) -> str:
    return element(name, inner)
