"""Keeps a test script on this machine: every connection and name lookup that is not to a
loopback address raises, and is remembered so the script can fail at the end even when a
library swallowed the error.

Import it and call `install()` before importing the SDK under test.
"""

import ipaddress
import socket
import sys

blocked: list[str] = []

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> None:
    blocked.append(what)
    print(f"loopback_guard: refused {what}", file=sys.stderr)
    raise OSError(f"loopback_guard: {what} is not a loopback address")


def install() -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def checked(address: object) -> None:
        if isinstance(address, tuple) and address and not is_loopback(address[0]):
            _refuse(f"connection to {address!r}")

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            checked(address)
        return real_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            checked(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host is not None and not is_loopback(host):
            _refuse(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def require_loopback_url(url: str) -> None:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    if not is_loopback(host):
        sys.exit(f"base URL {url!r} is not on a loopback address")


def exit_if_blocked() -> None:
    if blocked:
        sys.exit(f"loopback_guard: {len(blocked)} non-loopback attempt(s): {blocked}")
