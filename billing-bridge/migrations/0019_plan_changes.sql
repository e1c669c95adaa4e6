-- Staff move a subscription to another plan of the same type. An upgrade is billed at once for the
-- rest of the current period (the new plan's price for the days left, less the old plan's for the
-- same days) on an invoice of its own; the plan changes when that invoice is paid. A downgrade
-- takes effect with the next period: the renewal invoice is priced at the new plan, and the plan
-- changes when that renewal is paid. One change per subscription waits at a time.
CREATE TABLE plan_changes (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subscription_id uuid NOT NULL REFERENCES subscriptions,
    from_product  uuid NOT NULL REFERENCES products,
    to_product    uuid NOT NULL REFERENCES products,
    direction     text NOT NULL CHECK (direction IN ('upgrade', 'downgrade')),
    -- an upgrade's proration invoice
    invoice_id    uuid UNIQUE REFERENCES invoices,
    requested_by  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    applied_at    timestamptz,
    -- a change that will not happen: its invoice voided, the subscription ended, staff withdrew it
    withdrawn_at  timestamptz,
    CHECK (from_product <> to_product),
    CHECK ((direction = 'upgrade') = (invoice_id IS NOT NULL)),
    CHECK (applied_at IS NULL OR withdrawn_at IS NULL)
);
CREATE UNIQUE INDEX plan_changes_waiting ON plan_changes (subscription_id)
    WHERE applied_at IS NULL AND withdrawn_at IS NULL;
