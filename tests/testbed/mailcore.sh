# mail-core of the testbed: Dovecot (IMAP, LMTP) and Postfix (SMTP) whose users are rows of
# postfixadmin's tables in the mailcore database on the testbed's PostgreSQL (sourced by up). The
# configuration is written here; nothing under /etc/dovecot is read, and of /etc/postfix only what the
# packages keep there (the pgsql map plugin's registration). No mail ever leaves loopback.
#
# A second SMTP port (NOTIFY_SMTP_ADDR) takes the billing bridge's customer notifications: whatever
# it accepts from loopback, for any recipient, is delivered by Postfix's virtual agent to one capture
# maildir (MAIL_CAPTURE_DIR, files in new/), never to mail-core's mailboxes nor out.
#
# OpenDKIM, a milter of both Postfix's smtpd and its pickup (sendmail), signs mail whose From: domain
# has a key in the mailcore database (the view dkim_signing, whose rows the operator writes).
# shellcheck shell=bash

# the maildirs belong to nobody/nogroup: Dovecot refuses root as a mail user
MAIL_UID=65534
MAIL_GID=65534

# Postfix's daemons (user postfix), Dovecot's (dovecot, dovenull, MAIL_UID) and PostgreSQL's client
# libraries must reach the queue, the sockets and the maildirs, which a checkout in a 0700 directory
# would not let them: those live in /tmp, one directory per testbed, as PostgreSQL's data does.
mail_home() { echo "/tmp/mpanel-testbed-mail-$(printf %s "$TESTBED_DIR" | cksum | cut -d' ' -f1)"; }

# mail_banner PORT PREFIX: the first line the server on 127.0.0.1:PORT sends starts with PREFIX.
mail_banner() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  IFS= read -r -t 5 line <&3 && [[ $line == "$2"* ]]
)

mailcore_ready() {
  [ -f "$TESTBED_DIR/mailcore/env" ] || return 1
  # shellcheck disable=SC1091
  (source "$TESTBED_DIR/mailcore/env" && mail_banner "${IMAP_ADDR##*:}" '* OK' && mail_banner "${SMTP_ADDR##*:}" 220 \
    && [ -n "${NOTIFY_SMTP_ADDR:-}" ] && mail_banner "${NOTIFY_SMTP_ADDR##*:}" 220 && [ -d "${MAIL_CAPTURE_DIR:-}" ])
}

# doveadm answers 77 (auth failed) for an unknown user once the passdb query runs, 75 while it cannot.
dovecot_auth_ready() {
  local rc=0
  doveadm -c "$TESTBED_DIR/mailcore/dovecot.conf" auth test nobody@testbed.invalid wrong >/dev/null 2>&1 || rc=$?
  [ "$rc" = 77 ]
}

mailcore_login_ok() {
  PGPASSWORD=$(cat "$TESTBED_DIR/mailcore/password") "$(pg_bin)/psql" -X -q -h 127.0.0.1 \
    -p "$(cat "$TESTBED_DIR/postgres/port")" -U mailcore -d mailcore -c "SELECT 1 FROM mailbox LIMIT 1"
}

# mailcore_db: the mailcore role (logging in with its password), its database and the tables. Rows
# already there stay; a database made anew starts with an empty vmail root.
mailcore_db() {
  local pw hba
  pw=$(cat "$TESTBED_DIR/mailcore/password")
  hba=$(pg_home)/data/pg_hba.conf
  [ -n "$(psql_ postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'mailcore'")" ] \
    || psql_ postgres -c "CREATE ROLE mailcore"
  psql_ postgres -c "ALTER ROLE mailcore LOGIN PASSWORD '$pw'"
  if [ -z "$(psql_ postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'mailcore'")" ]; then
    psql_ postgres -c "CREATE DATABASE mailcore OWNER mailcore"
    rm -rf "$(mail_home)/vmail"
  fi
  psql_ mailcore -c "SET ROLE mailcore" -f "$ROOT/tests/testbed/mailcore-schema.sql"
  # the cluster trusts every other loopback login; this role must give its password, as in production
  if ! grep -q '^host mailcore mailcore ' "$hba"; then
    sed -i '1i host mailcore mailcore 127.0.0.1/32 scram-sha-256' "$hba"
    chown postgres:postgres "$hba"
    psql_ postgres -tAc "SELECT pg_reload_conf()" >/dev/null
  fi
  wait_for_daemon postgres 10 "the mailcore role to log in with its password" mailcore_login_ok
}

# write_dovecot_conf DIR HOME PG_PORT IMAP_PORT
write_dovecot_conf() {
  local d=$1 home=$2 pg_port=$3 imap_port=$4
  cat >"$d/dovecot.conf" <<CONF
# mail-core's Dovecot (written by tests/testbed/mailcore.sh): IMAP on loopback, LMTP on a unix socket
# for Postfix, users from the mailcore database. Run as: dovecot -F -c $d/dovecot.conf
instance_name = mpanel-testbed-mailcore
base_dir = $home/run
state_dir = $home/state
log_path = /dev/stderr
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
# plain LOGIN without TLS on loopback; no delay after a failed login (the tests try wrong passwords)
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
# no auth cache: a changed row (active = 0, a new password) counts from the next login on
auth_cache_size = 0
default_login_user = dovenull
default_internal_user = dovecot
mail_uid = $MAIL_UID
mail_gid = $MAIL_GID
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
last_valid_gid = $MAIL_GID
# home and maildir are both <vmail root>/<mailbox.maildir>, postfixadmin's convention
mail_location = maildir:~
mail_plugins = quota

passdb {
  driver = sql
  args = $d/dovecot-sql.conf.ext
}
userdb {
  driver = sql
  args = $d/dovecot-sql.conf.ext
}

# the limit is the user's quota_rule (mailbox.quota in bytes; 0 = none), usage is counted by Dovecot
plugin {
  quota = count:User quota
  quota_vsizes = yes
}
protocol imap {
  mail_plugins = \$mail_plugins imap_quota
}
protocol lmtp {
  mail_plugins = \$mail_plugins
  postmaster_address = postmaster@testbed.invalid
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
# no growing delay (up to 15 s) for further logins from an IP after a failed one: the tests try wrong
# passwords from 127.0.0.1 all the time
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
# Postfix's lmtp client (user postfix) delivers here
service lmtp {
  unix_listener lmtp {
    user = postfix
    group = postfix
    mode = 0600
  }
}
CONF
  (
    umask 077
    cat >"$d/dovecot-sql.conf.ext" <<CONF
# mail-core's users: active mailboxes of active domains. The password column holds its scheme
# ({BLF-CRYPT}, {ARGON2ID}, {SHA512-CRYPT}, ...); an unprefixed one is read as crypt(3).
driver = pgsql
connect = host=127.0.0.1 port=$pg_port dbname=mailcore user=mailcore password=$(cat "$d/password")
default_pass_scheme = CRYPT
password_query = SELECT m.username AS user, m.password AS password \\
  FROM mailbox m JOIN domain d ON d.domain = m.domain \\
  WHERE m.username = '%u' AND m.active = 1 AND d.active = 1
user_query = SELECT '$home/vmail/' || m.maildir AS home, '*:bytes=' || m.quota AS quota_rule \\
  FROM mailbox m JOIN domain d ON d.domain = m.domain \\
  WHERE m.username = '%u' AND m.active = 1 AND d.active = 1
iterate_query = SELECT m.username AS user FROM mailbox m JOIN domain d ON d.domain = m.domain \\
  WHERE m.active = 1 AND d.active = 1
CONF
  )
}

# write_opendkim_conf DIR PG_PORT MILTER_PORT: OpenDKIM signing (only) what comes from loopback, its
# keys looked up in the mailcore database for each message. It holds the password: root's only.
write_opendkim_conf() {
  local d=$1 pg_port=$2 milter_port=$3 dsn
  dsn="dsn:pgsql://mailcore:$(cat "$d/password")@$pg_port+127.0.0.1/mailcore/table=dkim_signing?keycol=domain"
  (
    umask 077
    cat >"$d/opendkim.conf" <<CONF
# mail-core's OpenDKIM (written by tests/testbed/mailcore.sh). Run as: opendkim -f -x $d/opendkim.conf
Mode s
Socket inet:$milter_port@127.0.0.1
UserID opendkim
InternalHosts 127.0.0.1
Canonicalization relaxed/simple
SignatureAlgorithm rsa-sha256
OversignHeaders From
Syslog no
# the From: domain -> itself (the label), then the label -> the domain, selector and key to sign with
SigningTable $dsn?datacol=domain
KeyTable $dsn?datacol=domain,selector,private_key
CONF
  )
}

# opendkim_ready PORT: OpenDKIM accepts connections on its milter port.
opendkim_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1"); }

# write_postfix_conf DIR HOME PG_PORT SMTP_PORT NOTIFY_PORT MILTER_PORT
write_postfix_conf() {
  local d=$1 home=$2 pg_port=$3 smtp_port=$4 notify_port=$5 milter_port=$6
  mkdir -p "$d/postfix"
  cat >"$d/postfix/main.cf" <<CONF
# mail-core's Postfix (written by tests/testbed/mailcore.sh): SMTP on loopback for the virtual domains
# in the mailcore database, delivered to Dovecot over LMTP. Nothing is relayed or sent out.
# Run as: <daemon_directory>/master -c $d/postfix -s (postfix start-fg without its script)
compatibility_level = 3.6
queue_directory = $home/queue
data_directory = $home/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = /dev/stdout
myhostname = mailcore.testbed.invalid
mydomain = testbed.invalid
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8

# no local delivery, no relaying, no outbound delivery, no DNS, no TLS
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled on the testbed
relay_domains =
relayhost =
default_transport = error:outbound mail is disabled on the testbed
relay_transport = error:relaying is disabled on the testbed
smtpd_relay_restrictions = reject_unauth_destination
smtp_dns_support_level = disabled
smtpd_tls_security_level = none
smtp_tls_security_level = none
lmtp_tls_security_level = none
biff = no

# the users: active rows of postfixadmin's tables, delivered by Dovecot
virtual_mailbox_domains = pgsql:$d/postfix/domains.cf
virtual_mailbox_maps = pgsql:$d/postfix/mailboxes.cf
virtual_alias_maps = pgsql:$d/postfix/aliases.cf
virtual_transport = lmtp:unix:$home/run/lmtp

# DKIM signatures from OpenDKIM; while it does not answer, mail goes on unsigned
smtpd_milters = inet:127.0.0.1:$milter_port
non_smtpd_milters = inet:127.0.0.1:$milter_port
milter_default_action = accept
CONF
  cat >"$d/postfix/master.cf" <<CONF
# service               type  private unpriv chroot wakeup maxproc command: the usual set, nothing chrooted
127.0.0.1:$smtp_port    inet       n      -      n      -      -    smtpd
pickup                  unix       n      -      n     60      1    pickup
cleanup                 unix       n      -      n      -      0    cleanup
qmgr                    unix       n      -      n    300      1    qmgr
rewrite                 unix       -      -      n      -      -    trivial-rewrite
bounce                  unix       -      -      n      -      0    bounce
defer                   unix       -      -      n      -      0    bounce
trace                   unix       -      -      n      -      0    bounce
verify                  unix       -      -      n      -      1    verify
flush                   unix       n      -      n  1000?      0    flush
proxymap                unix       -      -      n      -      -    proxymap
showq                   unix       n      -      n      -      -    showq
error                   unix       -      -      n      -      -    error
retry                   unix       -      -      n      -      -    error
discard                 unix       -      -      n      -      -    discard
lmtp                    unix       -      -      n      -      -    lmtp
anvil                   unix       -      -      n      -      1    anvil
scache                  unix       -      -      n      -      1    scache
postlog           unix-dgram       n      -      n      -      1    postlogd
# the bridge's notifications: relayed from loopback only, every recipient to the capture maildir
127.0.0.1:$notify_port  inet       n      -      n      -      -    smtpd
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_reject_unlisted_recipient=no
  -o content_filter=capture:
capture                 unix       -      n      n      -      -    virtual
  -o virtual_mailbox_base=$home
  -o virtual_mailbox_maps=static:capture/
  -o virtual_uid_maps=static:$MAIL_UID
  -o virtual_gid_maps=static:$MAIL_GID
  -o virtual_minimum_uid=$MAIL_UID
CONF
  local active="JOIN domain d ON d.domain = t.domain WHERE t.active = 1 AND d.active = 1"
  write_pgsql_map "$d/postfix/domains.cf" "$pg_port" \
    "SELECT domain FROM domain WHERE domain = '%s' AND active = 1 AND backupmx = 0"
  write_pgsql_map "$d/postfix/mailboxes.cf" "$pg_port" "SELECT t.maildir FROM mailbox t $active AND t.username = '%s'"
  write_pgsql_map "$d/postfix/aliases.cf" "$pg_port" "SELECT t.goto FROM alias t $active AND t.address = '%s'"
}

# write_pgsql_map FILE PG_PORT QUERY: a Postfix pgsql lookup table on the mailcore database. It holds
# the password: readable by root and the postfix group only.
write_pgsql_map() {
  (
    umask 027
    printf '%s\n' "hosts = inet:127.0.0.1:$2" "user = mailcore" "password = $(cat "$TESTBED_DIR/mailcore/password")" \
      "dbname = mailcore" "query = $3" >"$1"
  )
  chgrp postfix "$1"
}

up_mailcore() {
  if ! command -v dovecot >/dev/null || ! command -v postfix >/dev/null || [ ! -x /usr/sbin/opendkim ]; then
    log "Dovecot, Postfix or OpenDKIM is not installed; run tests/testbed/install-deps"; exit 1
  fi
  local d=$TESTBED_DIR/mailcore home pg_port
  home=$(mail_home); pg_port=$(cat "$TESTBED_DIR/postgres/port")
  mkdir -p "$d"
  [ -s "$d/password" ] || (umask 077 && openssl rand -hex 16 >"$d/password")
  mailcore_db
  mkdir -p "$home/vmail" "$home/capture/new" "$home/capture/cur" "$home/capture/tmp"
  chmod 755 "$home"
  chown "$MAIL_UID:$MAIL_GID" "$home/vmail"
  chmod 700 "$home/vmail"
  chown -R "$MAIL_UID:$MAIL_GID" "$home/capture"
  # a mail-core started for an earlier PostgreSQL would ask a port nobody listens on any more
  if is_running dovecot && is_running postfix && mailcore_ready && dovecot_auth_ready \
    && [ "$(cat "$d/pgport" 2>/dev/null)" = "$pg_port" ]; then
    if mailcore_signs; then
      log "mail-core already running; reusing it"
    else
      # one started before mail-core signed mail: OpenDKIM starts and Postfix reloads its
      # configuration with the milter; IMAP and SMTP keep their ports
      log "mail-core running without OpenDKIM; starting it and reloading Postfix"
      local milter_port
      milter_port=$(freeport)
      start_opendkim "$d" "$pg_port" "$milter_port"
      (
        # shellcheck disable=SC1091
        source "$d/env"
        write_postfix_conf "$d" "$home" "$pg_port" "${SMTP_ADDR##*:}" "${NOTIFY_SMTP_ADDR##*:}" "$milter_port"
      )
      postfix -c "$d/postfix" check >>"$TESTBED_DIR/postfix.log" 2>&1 || fail postfix "postfix check failed"
      grep -v '^OPENDKIM_ADDR=' "$d/env" >"$d/env.tmp" || true
      echo "OPENDKIM_ADDR=127.0.0.1:$milter_port" >>"$d/env.tmp"
      mv -f "$d/env.tmp" "$d/env"
      kill -HUP "$(cat "$(pidfile postfix)")"
    fi
  else
    stop_daemon postfix
    stop_daemon opendkim
    stop_daemon dovecot
    local imap_port smtp_port notify_port milter_port
    rm -f "$d/env"
    rm -rf "$home/run"
    imap_port=$(freeport); smtp_port=$(freeport); notify_port=$(freeport); milter_port=$(freeport)
    write_dovecot_conf "$d" "$home" "$pg_port" "$imap_port"
    write_postfix_conf "$d" "$home" "$pg_port" "$smtp_port" "$notify_port" "$milter_port"
    # in the queue directory (root's), postfix check makes the directories with the owners and modes
    # Postfix wants (user postfix; maildrop and public of group postdrop) and checks the configuration
    mkdir -p "$home/queue"
    postfix -c "$d/postfix" check >"$TESTBED_DIR/postfix.log" 2>&1 || fail postfix "postfix check failed"
    echo "$pg_port" >"$d/pgport"
    printf '%s\n' "MAILCORE_DATABASE_URL=postgres://mailcore:$(cat "$d/password")@127.0.0.1:$pg_port/mailcore" \
      "DOVECOT_CONF=$d/dovecot.conf" "IMAP_ADDR=127.0.0.1:$imap_port" "SMTP_ADDR=127.0.0.1:$smtp_port" \
      "MAILCORE_VMAIL_DIR=$home/vmail" "NOTIFY_SMTP_ADDR=127.0.0.1:$notify_port" \
      "MAIL_CAPTURE_DIR=$home/capture" "OPENDKIM_ADDR=127.0.0.1:$milter_port" >"$d/env"
    start_daemon dovecot dovecot -F -c "$d/dovecot.conf"
    wait_for_daemon dovecot 30 "Dovecot's IMAP greeting" mail_banner "$imap_port" '* OK'
    wait_for_daemon dovecot 30 "Dovecot's passdb to answer doveadm auth test" dovecot_auth_ready
    start_opendkim "$d" "$pg_port" "$milter_port"
    # what `postfix start-fg` runs after its checks: its script would stay in between (it execs the
    # master only as pid 1), and a SIGTERM to that script leaves the master running
    start_daemon postfix "$(postconf -c "$d/postfix" -h daemon_directory)/master" -c "$d/postfix" -s
    wait_for_daemon postfix 30 "Postfix's SMTP greeting" mail_banner "$smtp_port" 220
    wait_for_daemon postfix 30 "Postfix's SMTP greeting for notifications" mail_banner "$notify_port" 220
  fi
  mapfile -t keys <"$d/env"
  set_env 40-mailcore "${keys[@]}"
}

# mailcore_signs: OpenDKIM runs, answers on the port the env names, and Postfix's milters point at it.
mailcore_signs() {
  local d=$TESTBED_DIR/mailcore addr
  addr=$(grep '^OPENDKIM_ADDR=' "$d/env" 2>/dev/null | cut -d= -f2)
  [ -n "$addr" ] && is_running opendkim && opendkim_ready "${addr##*:}" 2>/dev/null \
    && [ "$(postconf -c "$d/postfix" -h smtpd_milters 2>/dev/null)" = "inet:$addr" ]
}

# start_opendkim DIR PG_PORT MILTER_PORT: (re)starts OpenDKIM with a configuration for these ports.
start_opendkim() {
  local d=$1 pg_port=$2 milter_port=$3
  stop_daemon opendkim
  write_opendkim_conf "$d" "$pg_port" "$milter_port"
  /usr/sbin/opendkim -n -x "$d/opendkim.conf" >"$TESTBED_DIR/opendkim.log" 2>&1 \
    || fail opendkim "OpenDKIM refused its configuration"
  start_daemon opendkim /usr/sbin/opendkim -f -x "$d/opendkim.conf"
  wait_for_daemon opendkim 30 "OpenDKIM's milter port" opendkim_ready "$milter_port"
}
