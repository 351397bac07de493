"""Where webhooks may go: public addresses only, plus what the operator allows (against SSRF).

A tenant admin chooses the URL, so without this a webhook is a way to make the service POST to
its own loopback, the cloud metadata address or the private network. The URL is checked when it
is registered and again before every attempt, after DNS resolution; the attempt then connects to
the address that was checked (the Host header and TLS name stay the URL's), so a name that
re-resolves between the check and the connection (DNS rebinding) cannot switch the target.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from service.errors import WebhookTargetForbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# the first test an address meets names why it is refused, most specific first
REFUSED_KINDS: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


class TargetUnresolved(Exception):
    """The URL's host name has no address (yet): worth another attempt later."""


@dataclass(frozen=True)
class PinnedTarget:
    """One checked address to connect to, and the URL's own name for Host and TLS."""

    url: httpx.URL
    host_header: str
    extensions: dict[str, str] = field(default_factory=dict)


def refused_kind(address: IPAddress) -> str | None:
    """Why an address is no place for a webhook, or None when it is public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refused_kind(embedded)
    for test, kind in REFUSED_KINDS:
        if getattr(address, test):
            return kind
    return None if address.is_global else "not globally routable"


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or 6to4 (2002::/16) address carries."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour
    return None


def parse_allowed(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """An operator's allow-list: IP addresses and CIDR networks, and host names."""
    networks: list[IPNetwork] = []
    names: set[str] = set()
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            names.add(_plain_name(entry))
    return tuple(networks), frozenset(names)


def _plain_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


class TargetPolicy:
    """Public addresses, plus the operator's allowed networks and host names."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._networks, self._names = parse_allowed(allowed)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why `host`, resolved to `address`, may not receive webhooks; None when it may."""
        if _plain_name(host) in self._names or any(address in n for n in self._networks):
            return None
        kind = refused_kind(address)
        if kind is None:
            return None
        shown = host if host == str(address) else f"{host} ({address})"
        return (
            f"webhook URL host {shown} is a {kind} address; webhooks go to public addresses "
            "only, unless the operator lists the host or its network in "
            "TUNEDESK_WEBHOOKS__ALLOWED_HOSTS"
        )

    async def check(self, url: str) -> None:
        """Refuse a URL whose host is or resolves to a forbidden address (at registration).

        A name that does not resolve yet is accepted: each attempt checks it again.
        """
        try:
            await self.pin(url)
        except TargetUnresolved:
            return

    async def pin(self, url: str) -> list[PinnedTarget]:
        """The checked addresses to try in turn; raises if any address is forbidden."""
        parsed = httpx.URL(url)
        addresses = await resolve(parsed.host, parsed.port or _default_port(parsed.scheme))
        for address in addresses:
            reason = self.refusal(parsed.host, address)
            if reason is not None:
                raise WebhookTargetForbidden(reason)
        return [_pinned(parsed, address) for address in addresses]


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _pinned(url: httpx.URL, address: IPAddress) -> PinnedTarget:
    extensions = {}
    if url.scheme == "https" and not _is_ip(url.host):
        extensions["sni_hostname"] = url.host  # and the certificate is checked against it
    return PinnedTarget(url.copy_with(host=str(address)), url.netloc.decode("ascii"), extensions)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The host's addresses in the resolver's order, each once (IP literals resolve to self)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetUnresolved(f"{host} does not resolve") from exc
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))
