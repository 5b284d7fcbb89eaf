"""The SSRF guard (pure: the resolver is injected)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadlex.ssrf import UnsafeUrl, host_parse_ip, ip_is_forbidden, ipv4_parse_loose, target_resolve


def resolver_of(*answers: str):
    def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    return resolve


def failing_resolver(host: str, port: int) -> list[str]:
    raise OSError("Name or service not known")


@pytest.mark.parametrize(
    "spelling, address",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("3232235777", "192.168.1.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_every_ipv4_spelling_means_the_address_inet_aton_would_use(spelling, address):
    assert ipv4_parse_loose(spelling) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.256",
        "4294967296",
        "08.0.0.1",
        "0x1g.0.0.1",
        "1..2",
        "",
        "1.2.3.-4",
        "1_000",
        " 1.2.3.4",
        "+1.2.3.4",
        "1.2.3.4a",
        "127.0.0.1.evil.com",
    ],
)
def test_names_and_malformed_numbers_are_not_ip_literals(host):
    assert ipv4_parse_loose(host) is None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_decimal_hex_and_dotted_spellings_agree(value):
    expected = ipaddress.IPv4Address(value)
    assert ipv4_parse_loose(str(value)) == expected
    assert ipv4_parse_loose(hex(value)) == expected
    assert ipv4_parse_loose(str(expected)) == expected
    assert ipv4_parse_loose("0" + oct(value)[2:]) == expected


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "2002:a00:1::",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "100::1",
        "fe80::1%eth0",
    ],
)
def test_internal_addresses_are_forbidden(address):
    assert ip_is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "172.32.0.1",
        "100.128.0.1",
        "11.0.0.1",
        "223.255.255.254",
        "2606:4700:4700::1111",
        "2a00:1450:4001:81a::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address):
    assert not ip_is_forbidden(ipaddress.ip_address(address))


@given(st.ip_addresses(v=4))
def test_a_mapped_ipv4_address_is_judged_as_the_ipv4_address(ip):
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    assert ip_is_forbidden(mapped) == ip_is_forbidden(ip)


@given(st.ip_addresses())
def test_every_address_is_either_global_or_forbidden(ip):
    if ip_is_forbidden(ip) is False:
        assert ip.is_global and not ip.is_multicast


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1:8080/x",
        "http://0177.0.0.1/",
        "http://[::1]:80/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "https://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1%25eth0]/",
        "http://0/",
    ],
)
def test_literal_internal_urls_are_refused_without_any_lookup(url):
    with pytest.raises(UnsafeUrl) as info:
        target_resolve(url, allow_private=False, resolver=failing_resolver)
    assert info.value.reason == "private_address"


@pytest.mark.parametrize(
    "answers",
    [("127.0.0.1",), ("10.1.1.1",), ("::1",), ("8.8.8.8", "192.168.1.1"), ("::ffff:127.0.0.1",), ("fe80::1%eth0",)],
)
def test_a_name_is_refused_when_any_of_its_addresses_is_internal(answers):
    with pytest.raises(UnsafeUrl) as info:
        target_resolve("https://hooks.example.com/x", allow_private=False, resolver=resolver_of(*answers))
    assert info.value.reason == "private_address"


def test_a_public_name_resolves_to_the_checked_address_to_connect_to():
    target = target_resolve(
        "https://hooks.example.com:8443/in?x=1",
        allow_private=False,
        resolver=resolver_of("2606:4700::1", "93.184.215.14"),
    )
    assert target.ip == ipaddress.ip_address("93.184.215.14")  # IPv4 preferred
    assert target.pinned_url == "https://93.184.215.14:8443/in?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.host == "hooks.example.com"


def test_an_ipv6_target_is_bracketed_in_the_pinned_url():
    target = target_resolve("http://hooks.example.com/", allow_private=False, resolver=resolver_of("2606:4700::1"))
    assert target.pinned_url == "http://[2606:4700::1]:80/"
    assert target.host_header == "hooks.example.com"


def test_private_addresses_pass_when_allowed():
    target = target_resolve("http://localhost:8000/hook", allow_private=True, resolver=resolver_of("127.0.0.1"))
    assert str(target.ip) == "127.0.0.1" and target.port == 8000


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://example.com/", "invalid_scheme"),
        ("file:///etc/passwd", "invalid_scheme"),
        ("gopher://127.0.0.1:6379/_", "invalid_scheme"),
        ("javascript:alert(1)", "invalid_scheme"),
        ("http://user:pw@example.com/", "credentials_in_url"),
        ("http://@example.com/", "credentials_in_url"),
        ("http:///path", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("http://example.com:0/", "invalid_url"),
        ("http://exa mple.com/", "invalid_url"),
        ("http://example.com/\r\nX: y", "invalid_url"),
        ("http://exa_mple!.com/", "invalid_url"),
        ("http://" + "a" * 2000 + ".com/", "invalid_url"),
        (None, "invalid_url"),
    ],
)
def test_malformed_urls_are_refused(url, reason):
    with pytest.raises(UnsafeUrl) as info:
        target_resolve(url, allow_private=True, resolver=resolver_of("8.8.8.8"))
    assert info.value.reason == reason


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(UnsafeUrl) as info:
        target_resolve("https://nowhere.invalid/", allow_private=True, resolver=failing_resolver)
    assert info.value.reason == "unresolvable"
    with pytest.raises(UnsafeUrl):
        target_resolve("https://nowhere.invalid/", allow_private=True, resolver=resolver_of())


def test_host_parse_ip_accepts_brackets_and_rejects_garbage():
    assert host_parse_ip("[::1]") == ipaddress.IPv6Address("::1")
    assert host_parse_ip("::g") is None
    assert host_parse_ip("example.com") is None
