"""RFC 2136 dynamic updates through dnspython, signed with TSIG.

Reads ask the primary server directly (over TCP). A change is one UPDATE message over TCP:
all record sets are replaced together or not at all, and each carries a prerequisite that
the record set still holds the values the plan was made from, so a record changed by hand
in between makes the update fail (NXRRSET/YXRRSET) instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update

from failover.errors import (
    AuthError,
    FailoverError,
    NotFound,
    ProviderError,
    Unreachable,
    UnsafePlan,
)
from providers.dns.base import (
    Capabilities,
    DnsProvider,
    RecordChange,
    RecordKey,
    RecordSet,
    not_delivered,
    one_line,
)

_ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha256-128": dns.tsig.HMAC_SHA256_128,
    "hmac-sha384-192": dns.tsig.HMAC_SHA384_192,
    "hmac-sha512-256": dns.tsig.HMAC_SHA512_256,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


def _fqdn(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


class Rfc2136DnsProvider(DnsProvider):
    kind = "rfc2136"
    capabilities = Capabilities(atomic=True, conditional=True, reports_sync=False)

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, config)
        self.server: str = config.server
        self.port: int = config.port
        self.timeout: float = config.timeout
        self.keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self.keyname: dns.name.Name | None = None
        self.algorithm = _ALGORITHMS[config.key_algorithm]
        if config.key_name is not None:
            secret = self._secret(config.key_secret.reveal())
            self.keyname = _fqdn(config.key_name)
            try:
                key = dns.tsig.Key(self.keyname, secret, self.algorithm)
                self.keyring = {self.keyname: key}
            except Exception:
                raise AuthError(
                    f"{self.label}: the TSIG key secret is not valid base64",
                    hint=f"check {config.key_secret.source}",
                ) from None

    def describe(self) -> str:
        signed = f"key {self.keyname.to_text(omit_final_dot=True)}" if self.keyname else "unsigned"
        return f"rfc2136 {self.server}:{self.port}, {signed}"

    # --- hooks ----------------------------------------------------------------------------

    def _read(self, key: RecordKey) -> RecordSet | None:
        query = dns.message.make_query(_fqdn(key.name), key.rtype)
        query.flags &= ~dns.flags.RD
        response = dns.query.tcp(query, self.server, port=self.port, timeout=self.timeout)
        rcode = response.rcode()
        if rcode == dns.rcode.REFUSED or (
            rcode == dns.rcode.NOERROR and not response.flags & dns.flags.AA
        ):
            raise NotFound(
                f"the server does not serve the zone {key.zone}",
                hint="check the zone name and that `server` is the zone's primary",
            )
        if rcode == dns.rcode.NXDOMAIN:
            return None
        if rcode != dns.rcode.NOERROR:
            raise ProviderError(f"reading {key} failed: {dns.rcode.to_text(rcode)}")
        rdtype = dns.rdatatype.from_text(key.rtype)
        for rrset in response.answer:
            if rrset.rdtype == rdtype and rrset.name == _fqdn(key.name):
                return RecordSet(key, tuple(rd.to_text() for rd in rrset), rrset.ttl)
        return None

    def _apply(self, changes: Sequence[RecordChange]) -> Any:
        zones = {change.key.zone for change in changes}
        if len(zones) != 1:
            raise ProviderError("one update can change one zone only")
        zone = zones.pop()
        update = dns.update.Update(
            _fqdn(zone), keyring=self.keyring, keyname=self.keyname, keyalgorithm=self.algorithm
        )
        for change in changes:
            name = _fqdn(change.key.name)
            if change.old is None or not change.old.values:
                update.absent(name, change.key.rtype)
            else:
                update.present(
                    name,
                    dns.rdataset.from_text_list("IN", change.key.rtype, 0, _wire(change.old)),
                )
            update.replace(name, change.new.ttl or 300, change.key.rtype, *_wire(change.new))
        self._mark_sent()
        response = dns.query.tcp(update, self.server, port=self.port, timeout=self.timeout)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return None
        # An UPDATE is all or nothing (RFC 2136 3.4): a refused signature or key means it
        # was not looked at; for other errors the outcome is read back, not assumed.
        error = self._rejected(rcode, zone)
        raise not_delivered(error) if isinstance(error, AuthError) else error

    def _rejected(self, rcode: dns.rcode.Rcode, zone: str) -> FailoverError:
        text = dns.rcode.to_text(rcode)
        if rcode == dns.rcode.REFUSED:
            return AuthError(
                f"the server refused the update ({text})",
                hint="the zone's update-policy/allow-update does not let "
                + ("this key" if self.keyname else "unsigned updates")
                + " change these records",
            )
        if rcode == dns.rcode.NOTAUTH:
            if self.keyname is not None:
                return AuthError(
                    f"the server rejected the update's signature or is not authoritative for "
                    f"{zone} ({text})",
                    hint="check key_name, key_secret and key_algorithm, and the zone name",
                )
            return NotFound(f"the server is not authoritative for {zone} ({text})")
        if rcode == dns.rcode.NOTZONE:
            return NotFound(f"a record is outside the zone {zone} ({text})")
        if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN):
            return UnsafePlan(
                f"the records changed since they were read ({text}); nothing was changed",
                hint="run the command again to see the current values",
            )
        return ProviderError(f"the update failed ({text})")

    def _translate(self, exc: BaseException, action: str) -> FailoverError | None:
        where = f"{self.server}:{self.port}"
        if isinstance(exc, dns.tsig.PeerError):
            # The server answered with a TSIG error: it did not apply the update.
            return not_delivered(_tsig_error(exc, action))
        if isinstance(exc, (dns.tsig.BadSignature, dns.tsig.BadTime)):
            return _tsig_error(exc, action)
        if isinstance(exc, ConnectionRefusedError):
            return not_delivered(
                Unreachable(
                    f"{action}: connection to {where} refused",
                    hint="is the DNS server running, and is `port` right?",
                )
            )
        if isinstance(exc, dns.exception.Timeout):
            return Unreachable(f"{action}: no answer from {where} within {self.timeout:g}s")
        if isinstance(exc, (OSError, EOFError, ConnectionError)):
            return Unreachable(f"{action}: {where}: {one_line(exc)}")
        if isinstance(exc, dns.exception.DNSException):
            return ProviderError(f"{action}: {one_line(exc)}")
        return None


def _tsig_error(exc: BaseException, action: str) -> FailoverError:
    if isinstance(exc, dns.tsig.PeerBadKey):
        return AuthError(
            f"{action}: the server does not know the TSIG key",
            hint="check key_name and key_algorithm against the server's key",
        )
    if isinstance(exc, (dns.tsig.PeerBadSignature, dns.tsig.BadSignature)):
        return AuthError(
            f"{action}: the TSIG signature was rejected (wrong key secret?)",
            hint="check key_secret and key_algorithm",
        )
    if isinstance(exc, (dns.tsig.PeerBadTime, dns.tsig.BadTime)):
        return AuthError(
            f"{action}: the server rejected the signature's time",
            hint="this machine's clock and the server's differ too much",
        )
    return AuthError(f"{action}: TSIG error from the server: {one_line(exc)}")


def _wire(recordset: RecordSet) -> list[str]:
    if recordset.key.rtype == "CNAME":
        return [v.rstrip(".") + "." for v in recordset.values]
    return list(recordset.values)
