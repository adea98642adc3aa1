"""The one way convmem makes an S3 client (import uploads, dataset objects)."""

from __future__ import annotations

from typing import Any

from convmem.settings import Settings


def client(settings: Settings) -> Any:
    import boto3  # loaded only where S3 is used
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        # SigV4: its pre-signed URLs can sign the content length.
        config=Config(signature_version="s3v4"),
    )
