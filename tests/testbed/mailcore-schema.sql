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
