"""Data mappings: sources (datasets, pushed rows) mapped to a store's traits, and their syncs."""
