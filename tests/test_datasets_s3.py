"""Datasets whose files are S3 objects, against a real S3-compatible server
(moto's server mode): schema, sync into profiles, and a missing object."""

from __future__ import annotations

import io

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from convmem.kit.db import Database
from convmem.settings import Settings
from tests.conftest import Api
from tests.factories import make_store, profiles_url
from tests.mapping_helpers import DATASETS, dataset_mapping, make_dataset, make_mapping, run_sync
from tests.test_imports_s3 import BUCKET, s3, s3_endpoint  # noqa: F401 (fixtures)


def test_csv_and_parquet_objects_sync(
    s3: tuple[Api, Settings],  # noqa: F811
    s3_endpoint: str,  # noqa: F811
    db: Database,
) -> None:
    api, settings = s3
    bucket = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket.put_object(
        Bucket=BUCKET,
        Key="crm/people.csv",
        Body=b"email,first\nobj1@example.com,One\nobj2@example.com,Two\n",
    )
    parquet = io.BytesIO()
    pq.write_table(pa.table({"email": ["obj3@example.com"], "points": [3]}), parquet)
    bucket.put_object(Bucket=BUCKET, Key="crm/more.parquet", Body=parquet.getvalue())

    store_id = make_store(api)
    from_csv = make_dataset(api, {"type": "CSV", "location": f"s3://{BUCKET}/crm/people.csv"})
    assert [f["dataType"] for f in from_csv["fields"]] == ["STRING", "STRING"]
    from_parquet = make_dataset(
        api, {"type": "PARQUET", "location": f"s3://{BUCKET}/crm/more.parquet"}
    )
    assert {f["name"]: f["dataType"] for f in from_parquet["fields"]} == {
        "email": "STRING",
        "points": "INTEGER",
    }
    for dataset, read in ((from_csv, 2), (from_parquet, 1)):
        mapping_id = make_mapping(
            api, store_id, dataset_mapping(dataset, [("email", "Contact", "email")])
        )
        sync = run_sync(api, db, settings, store_id, mapping_id)
        assert sync["status"] == "COMPLETED", sync
        assert sync["counts"]["read"] == sync["counts"]["created"] == read
    for email in ("obj1@example.com", "obj3@example.com"):
        found = api.post(
            profiles_url(store_id, "Lookup"), json={"idType": "email", "value": email}
        ).json()
        assert len(found["profiles"]) == 1
    missing = api.post(
        DATASETS,
        json={
            "displayName": "missing",
            "source": {"type": "CSV", "location": f"s3://{BUCKET}/nope.csv"},
        },
    )
    assert missing.status_code == 400
    assert "cannot be read" in missing.json()["message"]
    # No temporary copy is left behind.
    assert not list(settings.data_dir.glob("*.dataset"))
