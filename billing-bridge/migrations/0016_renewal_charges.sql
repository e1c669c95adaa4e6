-- Renewals are collected: a renewal invoice of a customer with a saved payment method is charged
-- off-session on its due date and again on each day of its product's dunning schedule (days after
-- the due date) until it is paid. Every attempt is a row: the amount, what Stripe answered (its
-- decline code verbatim), and the PaymentIntent. An attempt is written `pending` before Stripe is
-- asked and answered after, so a crash in between re-asks with the same idempotency key.
ALTER TABLE products ADD COLUMN dunning_days integer[] NOT NULL DEFAULT '{0,3,5,7}'
    CHECK (cardinality(dunning_days) BETWEEN 1 AND 10 AND 0 <= ALL (dunning_days));

CREATE TABLE charge_attempts (
    invoice_id     uuid NOT NULL REFERENCES invoices,
    attempt        integer NOT NULL CHECK (attempt >= 1),
    payment_method text NOT NULL,
    amount         numeric(12, 2) NOT NULL CHECK (amount > 0),
    currency       text NOT NULL,
    outcome        text NOT NULL DEFAULT 'pending'
                   CHECK (outcome IN ('pending', 'succeeded', 'processing', 'requires_action', 'declined', 'failed')),
    payment_intent text,
    decline_code   text,
    message        text,
    attempted_at   timestamptz NOT NULL DEFAULT now(),
    answered_at    timestamptz,
    PRIMARY KEY (invoice_id, attempt)
);
