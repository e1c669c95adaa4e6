-- The ledger: what was sold, billed and paid, and the subscriptions that turn it into resources.
-- Money is numeric(12,2) (read as rust_decimal), catalog prices are integer cents. The rules that
-- must hold whoever writes (gapless invoice numbers, amounts fixed at issue, the subscription
-- state machine) are enforced here, in the database, not only in the bridge.

CREATE TABLE tenants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- `handle` is the customer's id in Kubernetes: the namespace is customer-<handle>.
CREATE TABLE customers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants,
    handle             text NOT NULL UNIQUE CHECK (handle ~ '^[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?$'),
    email              text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    stripe_customer_id text UNIQUE,
    payment_method     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);

-- `template` is the Subscription's spec.resources with ${...} placeholders (see materializer).
-- The lifecycle periods count from an unpaid renewal invoice's due date.
CREATE TABLE products (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants,
    slug                text NOT NULL CHECK (slug ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
    name                text NOT NULL CHECK (name <> ''),
    type                text NOT NULL CHECK (type IN ('cloudpod', 'domain', 'dns', 'email', 'ssl', 'addon')),
    active              boolean NOT NULL DEFAULT true,
    template            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(template) = 'object'),
    renewal_notice_days integer NOT NULL DEFAULT 7 CHECK (renewal_notice_days BETWEEN 0 AND 365),
    grace_days          integer NOT NULL DEFAULT 7 CHECK (grace_days BETWEEN 0 AND 365),
    termination_days    integer NOT NULL DEFAULT 30 CHECK (termination_days BETWEEN 0 AND 730),
    refund_on_failure   boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug),
    CHECK (grace_days <= termination_days)
);

-- `purpose`: what the price buys. Domains have register (new), renew and transfer prices; other
-- products renew at their `new` price unless a `renewal` price is set.
CREATE TABLE product_prices (
    product_id   uuid NOT NULL REFERENCES products ON DELETE CASCADE,
    cycle        text NOT NULL CHECK (cycle IN ('monthly', 'quarterly', 'annual', 'biennial')),
    purpose      text NOT NULL DEFAULT 'new' CHECK (purpose IN ('new', 'renewal', 'transfer')),
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    currency     text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    PRIMARY KEY (product_id, cycle, purpose)
);

CREATE TABLE orders (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                  uuid NOT NULL REFERENCES tenants,
    customer_id                uuid NOT NULL REFERENCES customers,
    status                     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'cancelled', 'refunded')),
    cycle                      text NOT NULL,
    currency                   text NOT NULL DEFAULT 'usd',
    domain                     text,
    stripe_checkout_session_id text UNIQUE,
    checkout_url               text,
    created_at                 timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id    uuid NOT NULL REFERENCES orders ON DELETE CASCADE,
    position    integer NOT NULL,
    product_id  uuid NOT NULL REFERENCES products,
    purpose     text NOT NULL DEFAULT 'new',
    quantity    integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    unit_cents  bigint NOT NULL CHECK (unit_cents >= 0),
    description text NOT NULL,
    UNIQUE (order_id, position)
);

-- A subscription is created when its order's invoice is paid (one per order) and becomes active
-- only when its Subscription resource is Ready. `resources` is the rendered template, fixed at
-- purchase: later catalog edits do not change what a customer already has.
CREATE TABLE subscriptions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL REFERENCES tenants,
    customer_id          uuid NOT NULL REFERENCES customers,
    product_id           uuid NOT NULL REFERENCES products,
    order_id             uuid NOT NULL UNIQUE REFERENCES orders,
    cycle                text NOT NULL CHECK (cycle IN ('monthly', 'quarterly', 'annual', 'biennial')),
    status               text NOT NULL DEFAULT 'pending_activation' CHECK (status IN (
                             'pending_activation', 'active', 'past_due', 'suspended', 'cancelled',
                             'expired', 'provisioning_failed')),
    namespace            text NOT NULL,
    resource_name        text NOT NULL,
    domain               text,
    resources            jsonb NOT NULL,
    suspension_reason    text CHECK (suspension_reason IN ('Overdue', 'Abuse', 'Manual')),
    current_period_start timestamptz,
    current_period_end   timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    activated_at         timestamptz,
    ended_at             timestamptz,
    provisioning_phase   text,
    provisioning_message text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, resource_name),
    CHECK (current_period_start IS NULL OR current_period_end > current_period_start)
);

CREATE TABLE invoice_counters (
    tenant_id  uuid NOT NULL REFERENCES tenants,
    year       integer NOT NULL,
    last_value integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, year)
);

-- draft -> issued (unpaid) -> paid -> refunded; draft or issued -> void. A number is given at
-- issue; the amounts are summed from the lines at issue and cannot change afterwards.
-- `fulfilled_at`: the materializer has applied this payment to its subscription.
CREATE TABLE invoices (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants,
    customer_id     uuid NOT NULL REFERENCES customers,
    order_id        uuid REFERENCES orders,
    subscription_id uuid REFERENCES subscriptions,
    number          text UNIQUE CHECK (number ~ '^INV-[0-9]{4}-[0-9]{6}$'),
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'issued', 'paid', 'void', 'refunded')),
    currency        text NOT NULL DEFAULT 'usd',
    subtotal        numeric(12, 2) NOT NULL DEFAULT 0,
    discount_total  numeric(12, 2) NOT NULL DEFAULT 0,
    tax_total       numeric(12, 2) NOT NULL DEFAULT 0,
    total           numeric(12, 2) NOT NULL DEFAULT 0,
    period_start    timestamptz,
    period_end      timestamptz,
    issued_at       timestamptz,
    due_at          timestamptz,
    paid_at         timestamptz,
    voided_at       timestamptz,
    refunded_at     timestamptz,
    fulfilled_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK (order_id IS NOT NULL OR subscription_id IS NOT NULL)
);
CREATE INDEX invoices_unfulfilled ON invoices (paid_at) WHERE status = 'paid' AND fulfilled_at IS NULL;
CREATE INDEX invoices_subscription ON invoices (subscription_id);
CREATE INDEX invoices_order ON invoices (order_id);

-- Items, discounts (negative) and taxes are all lines; the invoice's totals are their sums.
CREATE TABLE invoice_lines (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    invoice_id  uuid NOT NULL REFERENCES invoices ON DELETE CASCADE,
    position    integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('item', 'discount', 'tax')),
    description text NOT NULL,
    product_id  uuid REFERENCES products,
    quantity    integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    unit_amount numeric(12, 2) NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    UNIQUE (invoice_id, position),
    CHECK (amount = quantity * unit_amount),
    CHECK (kind <> 'discount' OR amount <= 0),
    CHECK (kind = 'discount' OR amount >= 0)
);

-- One row per provider payment (a Stripe PaymentIntent): events about it, in any order and any
-- number of times, update this one row. `invoice_id` is null while only a refund has been seen.
CREATE TABLE payments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    invoice_id      uuid REFERENCES invoices,
    provider        text NOT NULL CHECK (provider IN ('stripe', 'manual')),
    reference       text NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    currency        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('succeeded', 'failed', 'refunded')),
    refunded_amount numeric(12, 2) NOT NULL DEFAULT 0,
    failure_message text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, reference)
);
CREATE INDEX payments_invoice ON payments (invoice_id);

-- Every Stripe event whose effects are in the ledger, recorded in the same transaction.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    created     timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    payload     jsonb NOT NULL
);

-- What the Kubernetes side must be told: apply a subscription's resource as the ledger now says, or
-- delete it. Rows are written in the transaction that changed the ledger and worked off in order.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions,
    action          text NOT NULL CHECK (action IN ('apply', 'delete')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    done_at         timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;

CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    entity    text NOT NULL,
    entity_id text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);

-- Admin API bearer tokens: only the SHA-256 of a token is kept.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'billing', 'support', 'read-only')),
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- ---- invoice rules ---------------------------------------------------------------------------

CREATE FUNCTION invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    y integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'draft' THEN
            RAISE EXCEPTION 'an invoice is created as a draft, not %', NEW.status USING ERRCODE = 'check_violation';
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
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status, NEW.status) IN (
            ('draft', 'issued'), ('draft', 'void'), ('issued', 'paid'), ('issued', 'void'), ('paid', 'refunded')) THEN
        RAISE EXCEPTION 'invoice % cannot go from % to %', coalesce(OLD.number, OLD.id::text), OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = 'draft' AND NEW.status = 'issued' THEN
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

CREATE TRIGGER invoice_guard BEFORE INSERT OR UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoice_guard();

CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s text;
    num text;
BEGIN
    SELECT status, number INTO s, num FROM invoices
     WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
    IF s IS DISTINCT FROM 'draft' AND s IS NOT NULL THEN
        RAISE EXCEPTION 'invoice % is issued: its lines cannot change', num USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard();

-- Whoever marks an invoice paid (the bridge, or another program with plain SQL), the materializer
-- hears of it; a periodic scan catches what a lost connection missed.
CREATE FUNCTION invoice_paid_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mpanel_invoice_paid', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER invoice_paid_notify AFTER UPDATE OF status ON invoices
    FOR EACH ROW WHEN (NEW.status = 'paid' AND OLD.status <> 'paid') EXECUTE FUNCTION invoice_paid_notify();

-- ---- subscription rules ----------------------------------------------------------------------

CREATE FUNCTION subscription_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status, NEW.status) IN (
            ('pending_activation', 'active'), ('pending_activation', 'provisioning_failed'),
            ('pending_activation', 'cancelled'),
            ('active', 'past_due'), ('active', 'suspended'), ('active', 'cancelled'), ('active', 'expired'),
            ('past_due', 'active'), ('past_due', 'suspended'), ('past_due', 'cancelled'),
            ('suspended', 'active'), ('suspended', 'past_due'), ('suspended', 'cancelled'),
            ('provisioning_failed', 'cancelled')) THEN
        RAISE EXCEPTION 'subscription % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER subscription_guard BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION subscription_guard();

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mpanel_outbox', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_notify();
