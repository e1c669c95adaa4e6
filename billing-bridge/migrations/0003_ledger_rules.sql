-- Ledger rules that 0001 left open, and the privileges of the bridge's runtime role.
--
-- * A draft may be voided (it has no number, and never gets one).
-- * A line belongs to its invoice for good once that invoice is issued: it cannot be moved out of
--   an issued, paid, void or refunded invoice, nor into one.
-- * Every change to a line takes the row lock of its draft invoice (a no-op UPDATE), so it and the
--   issue of that invoice happen one after the other: a line written while the invoice is issued
--   is either in its total or refused, at any isolation level.
-- * An issued invoice's subscription_id may be set once (fulfilment links a first invoice to the
--   subscription it made) and never changed; paid_at is set once, when the invoice becomes paid.
-- * A subscription starts as pending_activation; only the activation gate makes it active.
-- * A payment's refunds never exceed it, and a failed payment has none. Summed over an invoice's
--   payments, the refunds therefore never exceed what was paid for it either.

ALTER TABLE invoices DROP CONSTRAINT invoices_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_number_given_at_issue
    CHECK (status <> 'draft' OR number IS NULL),
    ADD CONSTRAINT invoices_issued_have_a_number
    CHECK (status IN ('draft', 'void') OR number IS NOT NULL);

CREATE OR REPLACE FUNCTION invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    y integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'draft' THEN
            RAISE EXCEPTION 'an invoice is created as a draft, not %', NEW.status USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.paid_at IS NOT NULL THEN
            RAISE EXCEPTION 'a draft invoice has not been paid' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be deleted (void it instead)', OLD.number
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND (NEW.tenant_id, NEW.customer_id, NEW.order_id, NEW.number, NEW.currency,
            NEW.subtotal, NEW.discount_total, NEW.tax_total, NEW.total, NEW.period_start, NEW.period_end,
            NEW.issued_at, NEW.due_at)
        IS DISTINCT FROM (OLD.tenant_id, OLD.customer_id, OLD.order_id, OLD.number, OLD.currency,
            OLD.subtotal, OLD.discount_total, OLD.tax_total, OLD.total, OLD.period_start, OLD.period_end,
            OLD.issued_at, OLD.due_at) THEN
        RAISE EXCEPTION 'invoice % is issued: its amounts, customer, number and dates cannot change', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status <> 'draft' AND OLD.subscription_id IS NOT NULL
            AND NEW.subscription_id IS DISTINCT FROM OLD.subscription_id THEN
        RAISE EXCEPTION 'invoice % is issued: its subscription cannot change', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.paid_at IS DISTINCT FROM OLD.paid_at
            AND NOT (OLD.paid_at IS NULL AND OLD.status = 'issued' AND NEW.status = 'paid') THEN
        RAISE EXCEPTION 'invoice %: paid_at is set once, when it becomes paid', coalesce(OLD.number, OLD.id::text)
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status, NEW.status) IN (
            ('draft', 'issued'), ('draft', 'void'), ('issued', 'paid'), ('issued', 'void'), ('paid', 'refunded')) THEN
        RAISE EXCEPTION 'invoice % cannot go from % to %', coalesce(OLD.number, OLD.id::text), OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = 'draft' AND NEW.status = 'issued' THEN
        -- the lines are read after this row is locked, and every line change locks this row
        -- first (invoice_lines_guard): no line can be written between this sum and the commit
        SELECT coalesce(sum(amount) FILTER (WHERE kind = 'item'), 0),
               coalesce(sum(amount) FILTER (WHERE kind = 'discount'), 0),
               coalesce(sum(amount) FILTER (WHERE kind = 'tax'), 0),
               count(*)
          INTO NEW.subtotal, NEW.discount_total, NEW.tax_total, n
          FROM invoice_lines WHERE invoice_id = NEW.id;
        IF n = 0 THEN
            RAISE EXCEPTION 'invoice % has no lines to issue', NEW.id USING ERRCODE = 'check_violation';
        END IF;
        NEW.total := NEW.subtotal + NEW.discount_total + NEW.tax_total;
        IF NEW.total < 0 THEN
            RAISE EXCEPTION 'invoice % would total %', NEW.id, NEW.total USING ERRCODE = 'check_violation';
        END IF;
        NEW.issued_at := coalesce(NEW.issued_at, now());
        y := extract(year FROM NEW.issued_at AT TIME ZONE 'UTC');
        -- the counter row is locked until this transaction ends, and rolled back with it: gapless
        INSERT INTO invoice_counters (tenant_id, year) VALUES (NEW.tenant_id, y) ON CONFLICT DO NOTHING;
        UPDATE invoice_counters SET last_value = last_value + 1
         WHERE tenant_id = NEW.tenant_id AND year = y RETURNING last_value INTO n;
        NEW.number := format('INV-%s-%s', y, lpad(n::text, 6, '0'));
    END IF;
    IF NEW.status = 'paid' AND OLD.status <> 'paid' THEN
        NEW.paid_at := coalesce(NEW.paid_at, now());
    END IF;
    IF NEW.status = 'void' AND OLD.status <> 'void' THEN
        NEW.voided_at := coalesce(NEW.voided_at, now());
    END IF;
    IF NEW.status = 'refunded' AND OLD.status <> 'refunded' THEN
        NEW.refunded_at := coalesce(NEW.refunded_at, now());
    END IF;
    RETURN NEW;
END $$;

-- Takes the row lock of a draft invoice whose lines change; refuses when the invoice is not a
-- draft (also when it became issued while this waited for the lock). An invoice that is gone
-- (a draft deleted in this transaction, its lines cascading) has nothing to keep.
CREATE FUNCTION invoice_lines_hold_draft(invoice uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text;
    num text;
BEGIN
    UPDATE invoices SET status = status WHERE id = invoice AND status = 'draft';
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT status, number INTO s, num FROM invoices WHERE id = invoice;
    IF FOUND THEN
        RAISE EXCEPTION 'invoice % is %: its lines cannot change', coalesce(num, invoice::text), s
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM invoice_lines_hold_draft(NEW.invoice_id);
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM invoice_lines_hold_draft(OLD.invoice_id);
        RETURN OLD;
    END IF;
    -- a move between two drafts locks both, the smaller id first (two opposite moves cannot
    -- deadlock); out of or into any other invoice it is refused
    PERFORM invoice_lines_hold_draft(least(OLD.invoice_id, NEW.invoice_id));
    IF NEW.invoice_id IS DISTINCT FROM OLD.invoice_id THEN
        PERFORM invoice_lines_hold_draft(greatest(OLD.invoice_id, NEW.invoice_id));
    END IF;
    RETURN NEW;
END $$;

-- ---- subscriptions -----------------------------------------------------------------------------

CREATE FUNCTION subscription_starts_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'pending_activation' OR NEW.activated_at IS NOT NULL THEN
        RAISE EXCEPTION 'a subscription starts as pending_activation, not %: it becomes active through the activation gate',
            NEW.status USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER subscription_starts_pending BEFORE INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION subscription_starts_pending();

-- ---- payments ----------------------------------------------------------------------------------

ALTER TABLE payments
    ADD CONSTRAINT payments_amount_not_negative CHECK (amount >= 0),
    ADD CONSTRAINT payments_refunds_within_amount CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    ADD CONSTRAINT payments_failed_have_no_refunds CHECK (status <> 'failed' OR refunded_amount = 0);

-- ---- the runtime role --------------------------------------------------------------------------

-- What the bridge needs at run time, granted to `runtime` by its owner after every migration
-- (`mpanel-billing-bridge migrate` with MPANEL_BRIDGE_RUNTIME_ROLE), so tables later migrations
-- add are covered too. It reads, inserts and updates every table, deletes only from the tables
-- named in `deletes` (a migration adding a table the bridge deletes from adds it there), and may
-- not rewrite the audit log or the Stripe events. It owns nothing, so it cannot alter, truncate or
-- drop a table or turn a rule (trigger) off. Revoking first makes a repeated grant leave exactly this.
CREATE FUNCTION grant_bridge_runtime(runtime text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r pg_roles;
    deletes text[] := ARRAY['products', 'product_prices', 'work_attempts'];
    t text;
BEGIN
    SELECT * INTO r FROM pg_roles WHERE rolname = runtime;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the runtime role % does not exist: create it (LOGIN, no superuser) first', runtime;
    END IF;
    IF r.rolsuper OR r.rolbypassrls OR pg_has_role(runtime, current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'the runtime role % must be an ordinary role: not a superuser, not the ledger''s owner (%) nor a member of it',
            runtime, current_user;
    END IF;
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', current_schema(), runtime);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', current_schema(), runtime);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('REVOKE INSERT, UPDATE ON _sqlx_migrations FROM %I', runtime);
    EXECUTE format('REVOKE UPDATE ON audit_log, stripe_events FROM %I', runtime);
    FOREACH t IN ARRAY deletes LOOP
        IF to_regclass(format('%I.%I', current_schema(), t)) IS NOT NULL THEN
            EXECUTE format('GRANT DELETE ON %I.%I TO %I', current_schema(), t, runtime);
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION grant_bridge_runtime(text) FROM PUBLIC;
