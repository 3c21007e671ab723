"""The SSRF guard: deliveries connect only to globally routable addresses, checked on
the address actually connected to, unless an allow-list opens a range on purpose."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import pytest

from outbox import DeliveryStatus
from worker.demo.receiver import always
from worker.errors import ConfigurationError
from worker.http.addresses import is_permitted
from worker.http.transport import Guard
from worker.settings import Settings

BLOCKED = [
    # IPv4
    "127.0.0.1",  # loopback
    "127.255.255.254",
    "10.1.2.3",  # private
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # link-local: cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "0.0.0.0",  # unspecified
    "0.1.2.3",  # "this network"
    "192.0.0.8",  # IETF protocol assignments
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    # IPv6
    "::1",  # loopback
    "::",  # unspecified
    "fe80::1",  # link-local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1",  # IPv4-mapped forms of blocked IPv4
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo of 127.0.0.1
]

PERMITTED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_global_addresses_are_refused(address: str) -> None:
    """Loopback, private, link-local, CGNAT, multicast, reserved, unspecified and the
    IPv6 forms that carry such an IPv4 address are never connected to by default."""
    assert not is_permitted(address)


@pytest.mark.parametrize("address", PERMITTED)
def test_global_unicast_addresses_are_permitted(address: str) -> None:
    """Public addresses, and IPv6 forms of public IPv4 addresses, are allowed."""
    assert is_permitted(address)


def test_the_allow_list_opens_only_the_ranges_named() -> None:
    """``CATENTIO_ALLOWED_NETWORKS=127.0.0.0/8`` opens loopback (and its mapped form),
    nothing else."""
    settings = Settings.from_env({"CATENTIO_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128"})
    allowed = settings.allowed_networks
    assert allowed == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert is_permitted("127.0.0.1", allowed)
    assert is_permitted("::ffff:127.0.0.1", allowed)
    assert is_permitted("::1", allowed)
    assert not is_permitted("10.0.0.1", allowed)
    assert not is_permitted("169.254.169.254", allowed)


def test_a_bad_allow_list_is_refused_at_start() -> None:
    """A value that is not a CIDR list stops the process with the variable named."""
    with pytest.raises(ConfigurationError, match="CATENTIO_ALLOWED_NETWORKS"):
        Settings.from_env({"CATENTIO_ALLOWED_NETWORKS": "localhost"})


def test_a_loopback_receiver_is_refused_without_the_allow_list(
    make_harness: Any, sqlite_url: str
) -> None:
    """With no allow-list, a delivery to a receiver on 127.0.0.1 is recorded as one
    ``blocked_address`` attempt and ends failed; the receiver gets nothing."""
    harness = make_harness(sqlite_url, allowed_networks=())
    harness.endpoint()
    (delivery_id,) = harness.deliveries()
    result = harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert result.status == DeliveryStatus.FAILED
    assert attempt.error_kind == "blocked_address" and attempt.outcome == "failed"
    assert "127.0.0.1" in (attempt.error or "")
    assert harness.receiver.received() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "127.1"])
def test_disguised_loopback_literals_are_refused(
    make_harness: Any, sqlite_url: str, host: str
) -> None:
    """IP literals that reach the local machine in other spellings are refused even
    though 127.0.0.0/8 would be refused anyway: the check is on the parsed address."""
    harness = make_harness(sqlite_url, allowed_networks=())
    port = harness.receiver.base_url.rsplit(":", 1)[1]
    harness.endpoint(url=f"http://{host}:{port}/hook")
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind == "blocked_address"
    assert harness.receiver.received() == []


def test_unspecified_address_stays_blocked_with_loopback_open(
    make_harness: Any, sqlite_url: str
) -> None:
    """``0.0.0.0`` connects to the local machine on Linux; opening 127.0.0.0/8 does not
    open it."""
    harness = make_harness(sqlite_url)  # loopback allowed
    port = harness.receiver.base_url.rsplit(":", 1)[1]
    harness.endpoint(url=f"http://0.0.0.0:{port}/hook")
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    assert harness.attempts(delivery_id)[0].error_kind == "blocked_address"
    assert harness.receiver.received() == []


class FakeDNS:
    """A resolver for tests: fixed answers per host name, calls recorded."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self._lock:
            self.calls.append(host)
        return list(self.answers[host])


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.7",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.3.4",
        "fd00::5",
        "::ffff:10.0.0.7",
        "64:ff9b::a9fe:a9fe",
        "127.0.0.1",
    ],
)
def test_a_host_name_resolving_to_a_private_address_is_refused(
    make_harness: Any, sqlite_url: str, address: str
) -> None:
    """``hooks.customer.test`` resolving to a private or metadata address is refused
    before any connection: one ``blocked_address`` attempt, delivery failed."""
    dns = FakeDNS({"hooks.customer.test": [address]})
    transport = Guard(allowed_networks=(), resolver=dns)
    harness = make_harness(sqlite_url, transport=transport, allowed_networks=())
    harness.endpoint(url="http://hooks.customer.test/webhooks")
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.FAILED
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind == "blocked_address"
    assert dns.calls == ["hooks.customer.test"]


def test_only_the_permitted_answer_is_connected_to_and_resolved_once(
    make_harness: Any, sqlite_url: str
) -> None:
    """A name resolving to a blocked and a permitted address is connected to the
    permitted one only, resolved once per connection: the checked address is the one
    used (no second lookup a rebinding DNS could answer differently). TLS and Host
    still carry the name."""
    dns = FakeDNS({"rebind.customer.test": ["10.9.8.7", "127.0.0.1"]})
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    transport = Guard(allowed_networks=loopback, resolver=dns)
    harness = make_harness(sqlite_url, transport=transport)
    port = harness.receiver.base_url.rsplit(":", 1)[1]
    harness.receiver.route("/hook")
    harness.endpoint(url=f"http://rebind.customer.test:{port}/hook")
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.SUCCEEDED
    (request,) = harness.receiver.received("/hook")
    assert request.headers["host"] == f"rebind.customer.test:{port}"
    assert dns.calls == ["rebind.customer.test"]


def test_redirect_to_an_internal_address_is_not_followed(harness: Any) -> None:
    """A receiver cannot bounce a delivery to cloud metadata with a redirect."""
    metadata = "http://169.254.169.254/latest/meta-data/"
    harness.endpoint(behaviour=always(307, headers={"location": metadata}))
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert (attempt.response_status, attempt.error_kind) == (307, "redirect")


def test_blocked_address_error_mentions_the_setting(make_harness: Any, sqlite_url: str) -> None:
    """A delivery refused by the SSRF guard says which setting would let it through."""
    harness = make_harness(sqlite_url, allowed_networks=())
    harness.endpoint()
    (delivery_id,) = harness.deliveries()
    harness.deliver(delivery_id)
    (attempt,) = harness.attempts(delivery_id)
    assert attempt.error_kind == "blocked_address"
    assert "CATENTIO_ALLOWED_NETWORKS" in (attempt.error or "")
