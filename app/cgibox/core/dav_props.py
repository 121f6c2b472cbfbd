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
import json
import os
import shutil
import stat as stat_mod
import time

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
LIVE = frozenset(ALLPROP_LIVE + QUOTA + (dav("displayname"),))
FILE_ONLY = frozenset({dav("getcontentlength"), dav("getcontenttype")})

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


def live_value(name: str, st: os.stat_result, content_type: str | None, real: str,
               locks: list[Lock], href_of_lock: dict[str, str]) -> str | None:
    """A live property's inner XML for this resource, or None when it has none."""
    is_dir = stat_mod.S_ISDIR(st.st_mode)
    if name == RESOURCETYPE:
        return "<D:collection/>" if is_dir else ""
    if name in FILE_ONLY and is_dir:
        return None
    if name == dav("getcontentlength"):
        return str(st.st_size)
    if name == dav("getcontenttype"):
        return text(content_type or "application/octet-stream")
    if name == dav("getlastmodified"):
        return conditional.http_date(st.st_mtime)
    if name == dav("creationdate"):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_ctime))
    if name == GETETAG:
        return text(conditional.make_etag(st))
    if name == SUPPORTEDLOCK:
        return SUPPORTED_LOCK_XML
    if name == LOCKDISCOVERY:
        return "".join(active_lock(lock, href_of_lock.get(lock.token, "")) for lock in locks)
    if name in QUOTA and is_dir:
        usage = disk_usage(real)
        if usage is None:
            return None
        return str(usage[0] if name == QUOTA[0] else usage[1])
    return None


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
