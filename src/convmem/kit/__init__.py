"""Shared plumbing: database, errors, ids, pagination, auth, HTTP helpers."""
