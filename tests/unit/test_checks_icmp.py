"""The pure pieces of the ICMP probe: checksum, echo requests, parsing echo replies."""

from __future__ import annotations

import struct

from failover.watch.probes.wire import echo_request, icmp_checksum, parse_echo_reply


def test_checksum_rfc1071_example() -> None:
    # RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert icmp_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_checksum_odd_length_pads_with_zero() -> None:
    assert icmp_checksum(b"\x01") == icmp_checksum(b"\x01\x00")


def test_echo_request_v4_verifies() -> None:
    packet = echo_request(0x1234, 7, v6=False, payload=b"abc")
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, ident, seq) == (8, 0, 0x1234, 7)
    assert packet[8:] == b"abc"
    assert icmp_checksum(packet) == 0  # a correct checksum sums to all ones


def test_echo_request_v6_leaves_the_checksum_to_the_kernel() -> None:
    packet = echo_request(1, 2, v6=True, payload=b"")
    assert struct.unpack("!BBHHH", packet) == (128, 0, 0, 1, 2)


def _ipv4_header(ihl_words: int = 5) -> bytes:
    return bytes([0x40 | ihl_words]) + b"\0" * (ihl_words * 4 - 1)


def test_parse_echo_reply_v4_skips_the_ip_header() -> None:
    reply = struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 3) + b"payload"
    assert parse_echo_reply(_ipv4_header() + reply, v6=False) == (0xBEEF, 3)
    assert parse_echo_reply(_ipv4_header(6) + reply, v6=False) == (0xBEEF, 3)


def test_parse_echo_reply_v6() -> None:
    assert parse_echo_reply(struct.pack("!BBHHH", 129, 0, 0, 9, 1), v6=True) == (9, 1)


def test_parse_echo_reply_ignores_other_messages() -> None:
    request = struct.pack("!BBHHH", 8, 0, 0, 1, 1)
    unreachable = struct.pack("!BBHHH", 3, 1, 0, 0, 0)
    assert parse_echo_reply(_ipv4_header() + request, v6=False) is None
    assert parse_echo_reply(_ipv4_header() + unreachable, v6=False) is None
    assert parse_echo_reply(_ipv4_header() + b"\0\0", v6=False) is None
    assert parse_echo_reply(b"\x45", v6=False) is None
    assert parse_echo_reply(struct.pack("!BBHHH", 128, 0, 0, 1, 1), v6=True) is None
