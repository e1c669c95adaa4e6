-- Checkout in two short transactions with the Stripe call between them, nothing held across it.
-- An order is written `opening` (with a draft invoice) before its Checkout Session is asked of
-- Stripe; it becomes `pending` when the session is recorded and the invoice issued, `failed` when
-- no session can be made for it any more (its draft voided), and `expired` when its session expired
-- unpaid (its invoice voided).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('opening', 'pending', 'paid', 'cancelled', 'refunded', 'expired', 'failed'));

-- A checkout's Idempotency-Key, per tenant, with a digest of the request it came with and the
-- order it made: a retry with the same key and request gets the answer the first one got (`status`
-- and `response`, once there is one) or resumes its order; the same key with another request is
-- refused. Kept for good, so a key never makes a second order.
CREATE TABLE checkout_requests (
    tenant_id       uuid NOT NULL REFERENCES tenants,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_sha256  bytea NOT NULL CHECK (length(request_sha256) = 32),
    order_id        uuid NOT NULL UNIQUE REFERENCES orders,
    status          smallint CHECK (status BETWEEN 200 AND 599),
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    PRIMARY KEY (tenant_id, idempotency_key),
    CHECK ((status IS NULL) = (response IS NULL) AND (status IS NULL) = (answered_at IS NULL))
);

-- Checkout attempts counted against the per-email and per-client-address limits: one row per
-- counted key, with the times of its attempts still inside the window (older ones are dropped
-- whenever the key is counted again) and, beside each, the attempt's Idempotency-Key ('' without
-- one), so the retries of one request count once.
CREATE TABLE checkout_attempts (
    tenant_id    uuid NOT NULL REFERENCES tenants,
    scope        text NOT NULL CHECK (scope IN ('email', 'address')),
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 320),
    attempts     timestamptz[] NOT NULL DEFAULT '{}',
    request_keys text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, scope, key),
    CHECK (cardinality(attempts) = cardinality(request_keys))
);
