"""An S3-compatible bucket to publish files to (the status page), through boto3 (imported
only when a page is published). One error boundary: whatever boto3 or the store raise
becomes a ProviderError with one line, the keys scrubbed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.errors import ProviderError
from providers.common import SecretScrubber, connection_refused

if TYPE_CHECKING:
    from failover.config.show import StatusPageConfig


class S3Bucket(SecretScrubber):
    def __init__(self, cfg: StatusPageConfig) -> None:
        self.cfg = cfg
        self.bucket = cfg.bucket_name
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg = self.cfg
            kwargs: dict[str, Any] = {"region_name": cfg.region}
            if cfg.access_key_id is not None and cfg.secret_access_key is not None:
                kwargs["aws_access_key_id"] = self._secret(cfg.access_key_id.reveal())
                kwargs["aws_secret_access_key"] = self._secret(cfg.secret_access_key.reveal())
            if cfg.endpoint:
                kwargs["endpoint_url"] = cfg.endpoint
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                config=Config(
                    connect_timeout=min(cfg.timeout, 10),
                    read_timeout=cfg.timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": cfg.addressing},
                ),
                **kwargs,
            )
        return self._client

    def put(self, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "CacheControl": cache_control,
        }
        if self.cfg.acl:
            args["ACL"] = self.cfg.acl
        try:
            self._s3().put_object(**args)
        except Exception as exc:
            raise ProviderError(
                f"cannot upload s3://{self.bucket}/{key}: {self._describe(exc)}",
                hint="check status_page.bucket, endpoint and credentials",
            ) from None

    def _describe(self, exc: BaseException) -> str:
        from botocore import exceptions as bx

        if isinstance(exc, bx.ClientError):
            err = exc.response.get("Error", {})
            text = f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
        elif connection_refused(exc):
            text = "connection refused"
        elif isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            text = "timed out"
        elif isinstance(exc, bx.NoCredentialsError):
            text = "no credentials (set access_key_id and secret_access_key)"
        else:
            text = f"{exc.__class__.__name__}: {exc}"
        return self._scrub(" ".join(text.split()))[:300]
