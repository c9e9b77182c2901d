"""The resolver answers a replay knows (a scenario's dns) and the names each address has."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from _events import Replay, header

from falcorules_ci.sources.records import CaptureHeader
from falcorules_ci.state.dns import DnsAnswers


def test_names_of_an_address_in_the_order_given() -> None:
    dns = DnsAnswers({"a.example": ("192.0.2.1", "2001:db8::1"), "b.example": ("192.0.2.1",),
                      "c.example": ("192.0.2.9",)})  # fmt: skip
    assert dns.names_of(IPv4Address("192.0.2.1")) == ("a.example", "b.example")
    assert dns.names_of(IPv6Address("2001:db8::1")) == ("a.example",)
    assert dns.names_of(IPv4Address("192.0.2.2")) == ()
    assert dns.names_of(None) == ()
    assert dns


def test_unparsable_answers_and_repeats_are_ignored() -> None:
    dns = DnsAnswers({"x": ("nope", "10.0.0.1", "10.0.0.1")})
    assert dns.names_of(IPv4Address("10.0.0.1")) == ("x",)
    assert not DnsAnswers() and DnsAnswers().names_of(IPv4Address("10.0.0.1")) == ()


def test_state_takes_the_headers_answers() -> None:
    head = header()
    head.dns = {"kubernetes.default.svc.cluster.local": ("10.96.0.1",)}
    assert Replay(head).state.dns.names_of(IPv4Address("10.96.0.1")) == ("kubernetes.default.svc.cluster.local",)
    assert not Replay(CaptureHeader()).state.dns  # a capture carries no answers
