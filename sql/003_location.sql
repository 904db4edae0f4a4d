-- Message v1's `location` (added to v1 after its first release): the checker.location of the
-- checker that probed, so that the results of a target probed from several locations are told
-- apart. NULL for no location: rows written before this migration, and messages without the field
-- (checkers without a location, or older than it).
--
-- Stored as a smallint id of a small lookup table, as checkers and error_classes are, not as text
-- in every row: there are a handful of locations and millions of rows a day. Measured (see
-- docs/storage.md): the name as text would cost 8.3 bytes per row ('eu-west-1'), the id 0 (its 2
-- bytes fall into the padding that rounds a row to 8), and a NULL is one bit of the null bitmap
-- the rows already have. 32,767 ids is far more than any fleet has locations. Grafana's location
-- variable reads this table instead of scanning checks for the distinct names.
--
-- Cheap to apply: a nullable column without a default is added to the catalog only, no partition
-- is rewritten, and partitions made later (webmon_ensure_checks_partition, LIKE checks) have it.
CREATE TABLE locations (
  id   smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL UNIQUE CHECK (name <> '')  -- "" is no location: stored as NULL, not as a row
);

ALTER TABLE checks ADD COLUMN location_id smallint;

-- The view gains the column at its end; its earlier columns stay as they were.
CREATE OR REPLACE VIEW check_results AS
SELECT t.name              AS target,
       t.url               AS url,
       c.scheduled_at,
       c.started_at,
       c.http_response_time,
       c.http_status,
       c.regexp_match,
       c.ok,
       e.name              AS error,
       c.error_detail,
       c.dns_cached,
       l.name              AS location
FROM checks c
JOIN targets t ON t.id = c.target_id
LEFT JOIN error_classes e ON e.id = c.error
LEFT JOIN locations l ON l.id = c.location_id;
