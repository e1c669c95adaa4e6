-- The customer portal: customers sign in without staff. A sign-in link is mailed to the customer's
-- address; it works once and for a short time. Its token is never stored: the ledger keeps its
-- SHA-256 (to find it when it is presented) and the mail is rendered at sending time from the
-- link's id and a key the bridge holds (`MPANEL_BRIDGE_PORTAL_KEY`), so the notification row holds
-- no credential either. Presenting the link gives a session token scoped to that customer, also
-- kept only as its SHA-256.
CREATE TABLE portal_sign_in_links (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id   uuid NOT NULL REFERENCES customers,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    CHECK (expires_at > created_at)
);
-- how many links a customer was sent lately (a limit on sign-in mails)
CREATE INDEX portal_sign_in_links_customer ON portal_sign_in_links (customer_id, created_at);

CREATE TABLE portal_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id   uuid NOT NULL REFERENCES customers,
    -- the link it was opened with: one session per link
    link_id       uuid NOT NULL UNIQUE REFERENCES portal_sign_in_links,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at)
);

ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('receipt', 'payment_failed', 'suspended', 'resumed', 'cancelled', 'provisioning_failed',
                    'invoice_issued', 'past_due', 'sign_in_link'));
