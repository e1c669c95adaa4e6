-- Work a bridge worker tried and could not do yet: one row per failing item (an outbox entry, a
-- paid invoice to fulfil, a subscription's activation or lifecycle step), removed when the item
-- succeeds. A worker leaves an item alone until `next_attempt_at` (exponential backoff) and works
-- on every other item meanwhile, so one customer's failing work never delays another's. The admin
-- API lists these rows (`GET /v1/admin/work/failing`).
CREATE TABLE work_attempts (
    worker          text NOT NULL CHECK (worker IN ('outbox', 'fulfilment', 'activation', 'lifecycle')),
    -- the item's key within its worker: the outbox entry's id, the invoice's id, the subscription's id
    item            text NOT NULL,
    subscription_id uuid REFERENCES subscriptions ON DELETE CASCADE,
    customer_id     uuid REFERENCES customers ON DELETE CASCADE,
    attempts        integer NOT NULL CHECK (attempts > 0),
    -- the error's stable code, and its words
    reason          text NOT NULL,
    last_error      text NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_failed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    next_attempt_at timestamptz NOT NULL,
    PRIMARY KEY (worker, item)
);
CREATE INDEX work_attempts_next ON work_attempts (worker, next_attempt_at);
CREATE INDEX work_attempts_customer ON work_attempts (customer_id);
