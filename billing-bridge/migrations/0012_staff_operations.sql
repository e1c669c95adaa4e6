-- Staff operations through the admin API: a token may expire (`expires_at`, set at creation or
-- later by an admin) and remembers when it was last used (to the minute); a customer may have a
-- name staff gave it. A customer's handle (its namespace) never changes: nothing here lets it.
ALTER TABLE api_tokens
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;

ALTER TABLE customers
    ADD COLUMN name text CHECK (name IS NULL OR length(name) BETWEEN 1 AND 200);
