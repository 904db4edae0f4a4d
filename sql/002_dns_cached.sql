-- Message v1's `dns_cached` (added to v1 after its first release): whether the probe's name lookups
-- were answered from the checker's DNS cache. NULL for rows written before this migration and for
-- messages that lack the field (checkers older than it, IP literals, probes that ended before
-- their lookup). Appended last: a boolean after the text column costs one byte, and adding a
-- nullable column without a default rewrites no partition.
ALTER TABLE checks ADD COLUMN dns_cached boolean;

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
       c.dns_cached
FROM checks c
JOIN targets t ON t.id = c.target_id
LEFT JOIN error_classes e ON e.id = c.error;
