"""A test-only shim that lets libcloud's EC2 driver talk to moto's EC2 in server mode.

Use it as a compute template's driver: `driver: tests.integration.compute.ec2_shim:
MotoEC2NodeDriver` (a class of libcloud's EC2 driver family, so the adapter treats it as
ec2: key pair, client token, tags). What it adjusts, and nothing else:

1. Signature version 4 by default (libcloud signs us-east-1 requests with version 2, which
   moto does not take). The driver's own `signature_version` argument still wins.
2. Successful responses: moto writes the namespace `http://ec2.amazonaws.com/doc/2016-11-15`
   without the trailing slash that libcloud's `NAMESPACE` (and real EC2) has, so libcloud
   finds nothing in them; the shim adds the slash before parsing. Only the response text
   is changed; libcloud's module is not patched.
3. Error responses: real EC2 answers `<Response><Errors><Error><Code/><Message/></Error>
   </Errors><RequestID/></Response>` without a namespace; moto puts the namespace on the
   root, and its auth errors add a `<Type>` element, and libcloud's parser (which expects
   exactly Code and Message, unqualified) then finds no error or fails. The shim rewrites
   moto's error into real EC2's shape with the same code and message.

Everything else (the requests libcloud makes, its parsing, its exceptions) is libcloud's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from libcloud.compute.drivers.ec2 import (
    API_VERSION,
    NAMESPACE,
    EC2Connection,
    EC2NodeDriver,
    EC2Response,
)

DRIVER = "tests.integration.compute.ec2_shim:MotoEC2NodeDriver"

_MOTO_NS = 'xmlns="{}"'.format(NAMESPACE.rstrip("/"))
_REAL_NS = f'xmlns="{NAMESPACE}"'
assert NAMESPACE.endswith(f"/{API_VERSION}/")


def real_ec2_body(body: Any) -> Any:
    """A successful moto response with real EC2's namespace."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if isinstance(body, str) and _MOTO_NS in body:
        body = body.replace(_MOTO_NS, _REAL_NS, 1)
    return body


def real_ec2_error(body: Any) -> Any:
    """A moto error response in real EC2's shape: unqualified, Code and Message only."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, TypeError):
        return body
    errors = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Error":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        if "Code" in fields:
            errors.append((fields["Code"], fields.get("Message", "")))
    if not errors:
        return body
    items = "".join(
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        for code, message in errors
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors>{items}</Errors><RequestID>moto</RequestID></Response>"
    )


class MotoEC2Response(EC2Response):
    def parse_body(self) -> Any:
        self.body = real_ec2_body(self.body)
        return super().parse_body()

    def parse_error(self) -> Any:
        self.body = real_ec2_error(self.body)
        return super().parse_error()


class MotoEC2Connection(EC2Connection):
    responseCls = MotoEC2Response


class MotoEC2NodeDriver(EC2NodeDriver):
    connectionCls = MotoEC2Connection

    def __init__(
        self, key: str, secret: str | None = None, signature_version: str = "4", **kwargs: Any
    ) -> None:
        super().__init__(key, secret, signature_version=signature_version, **kwargs)


__all__ = ["DRIVER", "MotoEC2NodeDriver", "real_ec2_body", "real_ec2_error"]
