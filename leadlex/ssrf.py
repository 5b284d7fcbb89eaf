"""Server-side request forgery guard for outgoing webhook requests.

A webhook URL is chosen by a customer, so before every request we resolve its
host and refuse addresses that reach *our* network: loopback, private,
link-local, shared (CGNAT), reserved, multicast, unspecified, including IPv4
hidden inside IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64) and the odd IPv4 spellings
that ``inet_aton`` and browsers accept (``2130706433``, ``0177.0.0.1``,
``0x7f.1``). The caller then connects to the exact address that was checked,
never resolving the name a second time: that closes DNS rebinding (a name that
answers a public address to the check and 127.0.0.1 to the connection).

Everything here is pure except the default resolver, which tests replace.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Besides what ``ipaddress`` flags (its tables differ between Python patch
# releases), the IANA special-purpose blocks that are not globally reachable.
_FORBIDDEN_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_FORBIDDEN_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",
        "::1/128",
        "::/96",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "64:ff9b:1::/48",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_DEFAULT_PORTS = {"http": 80, "https": 443}

_HEX = re.compile(r"^0[xX][0-9a-fA-F]*$")
_OCT = re.compile(r"^0[0-7]+$")
_DEC = re.compile(r"^(0|[1-9][0-9]*)$")


class UnsafeUrl(ValueError):
    """The URL may not be requested. ``reason`` is a short machine-readable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to ``ip``:``port``, present ``host`` (Host header, SNI)."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the host replaced by the checked address."""
        parts = urlsplit(self.url)
        ip_text = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        netloc = f"{ip_text}:{self.port}"
        path = parts.path or "/"
        return f"{self.scheme}://{netloc}{path}" + (f"?{parts.query}" if parts.query else "")

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if _DEFAULT_PORTS.get(self.scheme) == self.port else f"{host}:{self.port}"


def _ipv4_part(part: str) -> int | None:
    # inet_aton / WHATWG numbers: 0x.. hex, 0.. octal, else decimal.
    if _HEX.match(part):
        return int(part[2:], 16) if len(part) > 2 else 0
    if _OCT.match(part):
        return int(part, 8)
    if _DEC.match(part):
        return int(part)
    return None


def ipv4_parse_loose(host: str) -> ipaddress.IPv4Address | None:
    """The address a loose IPv4 spelling means (``127.1``, ``0x7f000001``,
    ``017700000001``), or None when ``host`` is not such a spelling."""
    text = host[:-1] if host.endswith(".") else host
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    parsed = [_ipv4_part(p) for p in parts]
    numbers = [n for n in parsed if n is not None]
    if len(numbers) != len(parsed):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (5 - len(parts)) + last
    return ipaddress.IPv4Address(value)


def host_parse_ip(host: str) -> IPAddress | None:
    """An IP literal (any IPv4 spelling, IPv6 with or without brackets/zone), else None."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return ipv4_parse_loose(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _v4_forbidden(ip: ipaddress.IPv4Address) -> bool:
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
        or any(ip in net for net in _FORBIDDEN_V4)
    )


def ip_is_forbidden(ip: IPAddress) -> bool:
    """True for every address a webhook must not reach."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_forbidden(ip)
    if ip.scope_id:  # a zone id only makes sense on a link-local address
        return True
    if ip.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket; judge the IPv4 address.
        return _v4_forbidden(ip.ipv4_mapped)
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_site_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
        or any(ip in net for net in _FORBIDDEN_V6)
    ):
        return True
    return any(_v4_forbidden(v4) for v4 in _embedded_ipv4(ip))


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # sockaddr[0] is the address text for both families (an int only for AF_CAN/AF_PACKET ones).
    return [str(info[4][0]) for info in infos]


def url_parse(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an http(s) URL; UnsafeUrl when it is not one we send to."""
    if not isinstance(url, str) or len(url) > 2000 or any(c in url for c in "\r\n\t\x00 "):
        raise UnsafeUrl("The URL is not a valid http(s) URL.", reason="invalid_url")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrl("Only http:// and https:// URLs are accepted.", reason="invalid_scheme")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not accepted.", reason="credentials_in_url")
    host = parts.hostname or ""
    if not host:
        raise UnsafeUrl("The URL has no host.", reason="invalid_url")
    try:
        port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
    except ValueError:
        raise UnsafeUrl("The URL's port is not valid.", reason="invalid_url") from None
    if not 0 < port < 65536:
        raise UnsafeUrl("The URL's port is not valid.", reason="invalid_url")
    return scheme, host, port


def target_resolve(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """Resolve ``url``'s host once and return the address to connect to.

    Every address the name resolves to must be allowed (an attacker controlling a
    zone can mix a public and a private record), unless ``allow_private``.
    """
    scheme, host, port = url_parse(url)
    literal = host_parse_ip(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", host):  # punycode must already be applied
            raise UnsafeUrl("The URL's host name is not valid.", reason="invalid_url")
        try:
            raw = list((resolver or _system_resolver)(host, port))
        except (OSError, UnicodeError):
            raise UnsafeUrl(f"The host {host!r} does not resolve.", reason="unresolvable") from None
        addresses = []
        for text in raw:
            ip = host_parse_ip(text.split("%", 1)[0]) if "%" in text else host_parse_ip(text)
            if ip is None:
                raise UnsafeUrl(f"The host {host!r} resolved to an unusable address.", reason="unresolvable")
            addresses.append(ip)
        if not addresses:
            raise UnsafeUrl(f"The host {host!r} does not resolve.", reason="unresolvable")
    if not allow_private:
        for ip in addresses:
            if ip_is_forbidden(ip):
                raise UnsafeUrl(
                    f"The URL resolves to a private or reserved address ({ip}); webhooks must be publicly reachable.",
                    reason="private_address",
                )
    # Prefer IPv4: most receivers listen on it, and containers often lack IPv6 routes.
    addresses.sort(key=lambda ip: ip.version)
    return Target(url=url, scheme=scheme, host=host, port=port, ip=addresses[0])
