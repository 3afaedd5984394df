-- Batches from and to a user's S3 prefix (issue 11, item 4). output_uri is
-- the output prefix (s3://bucket/prefix/, '' for the output zip), shown by
-- GET; s3_sealed is the user's S3 locations with their own credentials,
-- sealed (AES-256-GCM under the platform key, internal/sealed) and removed
-- when the batch ends (or by the sweep). Numbered 0007: 0006 is left to a
-- branch in flight (the batch webhook).

ALTER TABLE batches ADD COLUMN output_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN s3_sealed BLOB;
