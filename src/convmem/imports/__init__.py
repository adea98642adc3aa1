"""CSV profile imports: a pre-signed upload, then a background job that feeds
the file through the ingest pipeline, with status, counts and a report."""
