-- mail-core's tables on the testbed (tests/testbed/mailcore.sh loads this on every `up`; it must stay
-- safe to run again over existing rows). Table and column names are postfixadmin's, which the
-- operator's Mailbox controller relies on; Dovecot and Postfix read them (only rows with active = 1,
-- of a domain with active = 1).
--   quota, maxquota: bytes (0 = no limit)     password: a hash with its scheme, "{BLF-CRYPT}$2y$..."
--   maildir: the mailbox's maildir relative to the vmail root, "example.com/user/"
--   alias.goto: comma-separated target addresses
-- One addition: owner, the operator's ownership marker "namespace/name/uid"; a row whose owner is
-- NULL belongs to someone else and the operator leaves it alone.

CREATE TABLE IF NOT EXISTS domain (
  domain      VARCHAR(255) PRIMARY KEY,
  description VARCHAR(255) NOT NULL DEFAULT '',
  aliases     INT          NOT NULL DEFAULT 0,
  mailboxes   INT          NOT NULL DEFAULT 0,
  maxquota    BIGINT       NOT NULL DEFAULT 0,
  quota       BIGINT       NOT NULL DEFAULT 0,
  transport   VARCHAR(255) NOT NULL DEFAULT 'virtual',
  backupmx    SMALLINT     NOT NULL DEFAULT 0,
  created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  modified    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  active      SMALLINT     NOT NULL DEFAULT 1,
  owner       VARCHAR(255)
);

CREATE TABLE IF NOT EXISTS mailbox (
  username    VARCHAR(255) PRIMARY KEY,
  password    VARCHAR(255) NOT NULL,
  name        VARCHAR(255) NOT NULL DEFAULT '',
  maildir     VARCHAR(255) NOT NULL,
  quota       BIGINT       NOT NULL DEFAULT 0,
  local_part  VARCHAR(255) NOT NULL,
  domain      VARCHAR(255) NOT NULL REFERENCES domain (domain),
  created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  modified    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  active      SMALLINT     NOT NULL DEFAULT 1,
  owner       VARCHAR(255)
);
CREATE INDEX IF NOT EXISTS mailbox_domain_idx ON mailbox (domain);

CREATE TABLE IF NOT EXISTS alias (
  address     VARCHAR(255) PRIMARY KEY,
  goto        TEXT         NOT NULL,
  domain      VARCHAR(255) NOT NULL REFERENCES domain (domain),
  created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  modified    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  active      SMALLINT     NOT NULL DEFAULT 1,
  owner       VARCHAR(255)
);
CREATE INDEX IF NOT EXISTS alias_domain_idx ON alias (domain);

-- DKIM: the key each mail domain's outgoing mail is signed with, written by the operator (owner is
-- the marker of the namespace whose Mailboxes use the domain, as on its domain row). OpenDKIM reads
-- the view dkim_signing on every message (its SigningTable and KeyTable), so a new or rotated key
-- signs from the next message on. The view signs only for an active domain whose row is the key
-- owner's (or was made outside the operator): a key row alone never signs another's domain.
--   selector: the DNS label under _domainkey     private_key: PEM (PKCS#8)
CREATE TABLE IF NOT EXISTS dkim_key (
  domain      VARCHAR(255) PRIMARY KEY REFERENCES domain (domain) ON DELETE CASCADE,
  selector    VARCHAR(63)  NOT NULL,
  private_key TEXT         NOT NULL,
  created     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  modified    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  owner       VARCHAR(255) NOT NULL
);

CREATE OR REPLACE VIEW dkim_signing AS
  SELECT k.domain, k.selector, k.private_key
  FROM dkim_key k JOIN domain d ON d.domain = k.domain
  WHERE d.active = 1 AND (d.owner IS NULL OR d.owner = k.owner);
