"""One ingest pipeline for every bulk path (CSV imports, dataset syncs):
source rows -> column-to-trait mapping and coercion -> records -> resolution
and writes in batches -> a per-row outcome and report lines."""
