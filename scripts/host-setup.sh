#!/usr/bin/env bash
# jit-ssh host setup: make this server's sshd trust jit-ssh certificates for one target.
#
#   host-setup.sh --server URL --target T [--root DIR] [--sshd-config FILE] [--sync auto|systemd|cron|none]
#                 [--max-age SECONDS] [--cacert FILE] [--allow-http] [--no-reload]
#                 [--host-token-file FILE | --host-token TOKEN]
#                 [--no-session-guard] [--enroll-token-file FILE | --enroll-token TOKEN]
#
# What it does, in an order that never locks anyone out:
#   1. fetches the target's principals (GET /v1/host-config) and writes one file per account
#      under /etc/ssh/jit-ssh/principals/ (0644, root-owned; stale ones are removed);
#   2. installs the KRL sync (/usr/local/sbin/jit-ssh-krl-sync + /etc/ssh/jit-ssh/sync.conf) and
#      runs it once: revoked.krl and ca.pub (GET /v1/krl, /v1/ca) exist and parse BEFORE sshd is
#      told to use them (sshd refuses every key when RevokedKeys is missing);
#   3. schedules the sync: a systemd timer when systemd runs, else /etc/cron.d (every minute);
#   3b. installs the session guard (/usr/local/sbin/jit-ssh-session-guard + guard.conf): it ends
#      sessions whose jit-ssh certificate expired or was revoked; a systemd service, else a
#      supervised loop started from /etc/cron.d (@reboot, and re-checked every minute);
#   3c. with an enrolment token (jit-sshd host token): gets a host certificate for every host key
#      sshd uses (POST /v1/hosts/enroll), writes it next to the key (<key>-cert.pub), and lets
#      the sync renew it when less than a third of its validity is left;
#   4. puts three lines (four with the guard: ExposeAuthInfo yes) in one marked block at the top of sshd_config (first value wins in sshd):
#      TrustedUserCAKeys, AuthorizedPrincipalsFile, RevokedKeys; checks `sshd -t` and `sshd -T`
#      and restores the previous file if sshd rejects it; reloads sshd if the file changed.
# Every file is written to a temp file and renamed into place. Running it again changes nothing
# unless the CA's answer changed; rerun it after the target's accounts change in the policy.
# The sshd_config lines are fixed by this script, never taken from the server: a CA answer can
# change who may log in as which account, but cannot add other sshd options.
#
#   --root DIR        write everything under DIR (tests, images, a dry look); the sshd_config
#                     lines then name the DIR paths so the result runs as-is; nothing is
#                     activated or reloaded.
#   --sshd-config F   the sshd_config to edit (default ROOT/etc/ssh/sshd_config)
#   --sync MODE       auto (default): systemd if running, else cron; none: only the first sync
#   --max-age S       the sync logs loudly when its last success is older (default 900)
#   --cacert FILE     CA bundle for an https server with a private CA
#   --allow-http      allow plain http to a non-loopback server (only behind a trusted proxy)
#   --no-reload       do not reload sshd after changing sshd_config
#   --host-token-file FILE  the host token the CA admin gave you (hostTokens in jit-sshd.yaml),
#                     sent as Authorization: Bearer to GET /v1/host-config; JITSSH_HOST_TOKEN
#                     works too. --host-token TOKEN also, but shows the token to `ps`.
#   --no-session-guard  leave the session guard out (sessions then outlive their certificate);
#                     removes a guard an earlier run installed
#   --enroll-token-file FILE  the one-time host enrolment token (jit-sshd host token --target T);
#                     JITSSH_ENROLL_TOKEN works too, --enroll-token TOKEN also (visible to `ps`).
#                     Without a host token, it also opens GET /v1/host-config for this run.
set -eu
umask 022

PROG=host-setup.sh
SERVER="" TARGET="" ROOT="" SSHD_CONFIG="" SYNC=auto MAX_AGE=900 CACERT="" ALLOW_HTTP=0 RELOAD=1
HOST_TOKEN=${JITSSH_HOST_TOKEN:-}
GUARD=1
ENROLL_TOKEN=${JITSSH_ENROLL_TOKEN:-}
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }
usage() { sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER=${2:?--server needs a URL}; shift ;;
    --target) TARGET=${2:?--target needs a name}; shift ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --sshd-config) SSHD_CONFIG=${2:?--sshd-config needs a file}; shift ;;
    --sync) SYNC=${2:?--sync needs auto, systemd, cron or none}; shift ;;
    --max-age) MAX_AGE=${2:?--max-age needs seconds}; shift ;;
    --cacert) CACERT=${2:?--cacert needs a file}; shift ;;
    --allow-http) ALLOW_HTTP=1 ;;
    --no-reload) RELOAD=0 ;;
    --host-token) HOST_TOKEN=${2:?--host-token needs a token}; shift ;;
    --host-token-file)
      [ -r "${2:?--host-token-file needs a file}" ] || die "--host-token-file: cannot read $2"
      HOST_TOKEN=$(head -n 1 "$2" | tr -d '\r\n'); shift ;;
    --no-session-guard) GUARD=0 ;;
    --enroll-token) ENROLL_TOKEN=${2:?--enroll-token needs a token}; shift ;;
    --enroll-token-file)
      [ -r "${2:?--enroll-token-file needs a file}" ] || die "--enroll-token-file: cannot read $2"
      ENROLL_TOKEN=$(head -n 1 "$2" | tr -d '\r\n'); shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

[ -n "$SERVER" ] || die "--server URL is required (the jit-sshd address, e.g. https://ca.example.com:7422)"
[ -n "$TARGET" ] || die "--target NAME is required (the policy target this host belongs to)"
printf '%s' "$TARGET" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' || die "--target: not a target name: $TARGET"
case "$SYNC" in auto|systemd|cron|none) ;; *) die "--sync must be auto, systemd, cron or none" ;; esac
case "$MAX_AGE" in ''|*[!0-9]*) die "--max-age must be whole seconds" ;; esac
SERVER=${SERVER%/}
case "$SERVER" in
  https://*) ;;
  http://localhost|http://localhost[:/]*|http://\[::1\]|http://\[::1\][:/]*) ;;
  http://127.*)
    # Loopback only as an IP literal: http://127.attacker.example must not pass as loopback.
    HOSTPART=${SERVER#http://}; HOSTPART=${HOSTPART%%[:/]*}
    printf '%s' "$HOSTPART" | grep -Eq '^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$' || [ "$ALLOW_HTTP" = 1 ] ||
      die "refusing plain http to $SERVER: not a loopback address (use https, or --allow-http behind a trusted proxy)" ;;
  http://*) [ "$ALLOW_HTTP" = 1 ] || die "refusing plain http to $SERVER: CA keys fetched without TLS could be forged (use https, or --allow-http behind a trusted proxy)" ;;
  *) die "--server must be an http:// or https:// URL" ;;
esac
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  case "$ROOT" in *[!A-Za-z0-9._/-]*) die "--root: use a path of letters, digits, . _ - / (it ends up in sshd_config)" ;; esac
  [ "$ROOT" = / ] && ROOT=""
fi
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR to write into a directory)"
for tool in curl ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (apt-get install curl openssh-client)"
done
SSHD=$(command -v sshd 2>/dev/null || true)
[ -n "$SSHD" ] || for p in /usr/sbin/sshd /usr/local/sbin/sshd /sbin/sshd; do [ -x "$p" ] && SSHD=$p && break; done
[ -n "$SSHD" ] || die "sshd not found (apt-get install openssh-server)"
KRL_SYNC_SRC="$SCRIPT_DIR/krl-sync.sh"
[ -r "$KRL_SYNC_SRC" ] || die "krl-sync.sh must sit beside host-setup.sh ($KRL_SYNC_SRC is missing)"
GUARD_SRC="$SCRIPT_DIR/jit-ssh-session-guard"
[ "$GUARD" = 0 ] || [ -r "$GUARD_SRC" ] || die "jit-ssh-session-guard must sit beside host-setup.sh ($GUARD_SRC is missing; or use --no-session-guard)"

ETC="$ROOT/etc/ssh/jit-ssh"
PRINCIPALS_DIR="$ETC/principals"
CA_FILE="$ETC/ca.pub"
KRL_FILE="$ETC/revoked.krl"
SYNC_CONF="$ETC/sync.conf"
STATE_DIR="$ROOT/var/lib/jit-ssh"
SYNC_BIN="$ROOT/usr/local/sbin/jit-ssh-krl-sync"
[ -n "$SSHD_CONFIG" ] || SSHD_CONFIG="$ROOT/etc/ssh/sshd_config"
[ -f "$SSHD_CONFIG" ] || die "no sshd_config at $SSHD_CONFIG (use --sshd-config FILE)"

CHANGES=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jit-ssh-setup.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CURL_OPTS=(--silent --show-error --fail-with-body --max-time 30 --connect-timeout 10 --proto =http,https)
[ -n "$CACERT" ] && CURL_OPTS+=(--cacert "$CACERT")
curl --help all 2>/dev/null | grep -q -- --fail-with-body || CURL_OPTS=("${CURL_OPTS[@]/--fail-with-body/--fail}")
# The host token goes to curl through a 0600 header file, never on its command line.
HOST_AUTH=()
if [ -n "$ENROLL_TOKEN" ]; then
  # It is put into a JSON body: letters, digits, _ and - only (what jit-sshd host token prints).
  printf '%s' "$ENROLL_TOKEN" | grep -Eq '^[A-Za-z0-9_-]{1,512}$' || die "enrolment token: not a token (letters, digits, _ and - only)"
  # The enrolment token also opens the host config of its target.
  [ -n "$HOST_TOKEN" ] || HOST_TOKEN=$ENROLL_TOKEN
fi
if [ -n "$HOST_TOKEN" ]; then
  printf '%s' "$HOST_TOKEN" | grep -Eq '^[!-~]{1,512}$' || die "host token: must be 1-512 printable characters without spaces"
  (umask 077 && printf 'Authorization: Bearer %s\n' "$HOST_TOKEN" >"$WORK/auth.header")
  HOST_AUTH=(-H "@$WORK/auth.header")
fi

say "jit-ssh host setup: target $TARGET, server $SERVER${ROOT:+, root $ROOT}"

# install_file SRC DEST MODE: atomic replace when content, mode or owner differ; reports.
install_file() {
  local src=$1 dest=$2 mode=$3 tmp want_owner="" cur_mode
  [ "$(id -u)" = 0 ] && want_owner="0:0"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    cur_mode=$(stat -c '%a' "$dest")
    if [ "$cur_mode" = "${mode#0}" ] && { [ -z "$want_owner" ] || [ "$(stat -c '%u:%g' "$dest")" = "$want_owner" ]; }; then
      say "  unchanged $dest"
      return 0
    fi
  fi
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
  cat "$src" >"$tmp"
  chmod "$mode" "$tmp"
  [ -n "$want_owner" ] && chown "$want_owner" "$tmp"
  local verb=created
  [ -e "$dest" ] && verb=updated
  mv -f "$tmp" "$dest"
  say "  $verb $dest ($mode)"
  CHANGES=$((CHANGES + 1))
}

# ensure_dir DIR: a system directory (/etc/ssh, /usr/local/sbin …): create if missing, never re-mode.
ensure_dir() {
  [ -d "$1" ] && return 0
  mkdir -p "$1"
  say "  created $1/"
  CHANGES=$((CHANGES + 1))
}

# make_dir DIR MODE: a directory jit-ssh owns: created and kept at MODE, root-owned.
make_dir() {
  if [ -d "$1" ]; then
    [ "$(stat -c '%a' "$1")" = "${2#0}" ] && return 0
    chmod "$2" "$1"
    say "  chmod $2 $1"
  else
    mkdir -p "$1"
    chmod "$2" "$1"
    say "  created $1/ ($2)"
  fi
  [ "$(id -u)" = 0 ] && chown 0:0 "$1"
  CHANGES=$((CHANGES + 1))
}

fetch() { # fetch PATH OUT [CURL ARGS…]: GET SERVER/PATH into OUT or die with the server's message
  local body path=$1 out=$2
  shift 2
  if ! curl "${CURL_OPTS[@]}" "$@" -o "$out" "$SERVER$path" 2>"$WORK/curl.err"; then
    body=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$out" 2>/dev/null | head -n 1)
    die "GET $SERVER$path failed: ${body:-$(head -c 300 "$WORK/curl.err")}"
  fi
}

# ---- 1. principals ----
fetch "/v1/host-config?target=$TARGET&format=plain&etcDir=$ETC" "$WORK/host-config" ${HOST_AUTH[@]+"${HOST_AUTH[@]}"}
mkdir -p "$WORK/principals"
while IFS="$(printf '\t')" read -r kind account principal rest; do
  [ "$kind" = principal ] || continue
  [ -z "$rest" ] || die "host config: malformed line for account $account"
  printf '%s' "$account" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' || die "host config: bad account name '$account'"
  printf '%s' "$principal" | grep -Eq '^[A-Za-z0-9._@+=:-]{1,255}$' || die "host config: bad principal '$principal'"
  printf '%s\n' "$principal" >>"$WORK/principals/$account"
done <"$WORK/host-config"
ls "$WORK/principals" | grep -q . || die "host config for $TARGET lists no principals (is the server a jit-sshd?)"
ensure_dir "$ROOT/etc/ssh"
make_dir "$ETC" 0755
make_dir "$PRINCIPALS_DIR" 0755
for f in "$WORK/principals"/*; do
  account=$(basename "$f")
  sort -u "$f" -o "$f"
  install_file "$f" "$PRINCIPALS_DIR/$account" 0644
  if [ -z "$ROOT" ] && ! getent passwd "$account" >/dev/null 2>&1; then
    say "  note: account $account does not exist on this host; its principals file is harmless until it does"
  fi
done
# The directory is ours: an account dropped from the target must stop accepting certificates.
for f in "$PRINCIPALS_DIR"/*; do
  [ -e "$f" ] || continue
  if [ ! -e "$WORK/principals/$(basename "$f")" ]; then
    rm -f "$f"
    say "  removed $f (account no longer in target $TARGET)"
    CHANGES=$((CHANGES + 1))
  fi
done

# ---- jit-ssh host certificates: which keys (begin) ----
# The host keys sshd uses (sshd -T, else the usual files), minus DSA and keys without a .pub.
# Certified keys: all of them when enrolling now, else those an earlier enrolment certified.
list_host_keys() {
  local keys
  keys=$("$SSHD" -T -f "$SSHD_CONFIG" 2>/dev/null | awk '$1 == "hostkey" { print $2 }') || keys=""
  [ -n "$keys" ] || keys=$(ls "$ROOT"/etc/ssh/ssh_host_*_key 2>/dev/null || true)
  for k in $keys; do
    [ -r "$k.pub" ] || continue
    case "$(awk '{ print $1; exit }' "$k.pub")" in ssh-dss|'') continue ;; esac
    case "$k" in *[!A-Za-z0-9._/-]*) say "  note: host key $k skipped (its path cannot go into sshd_config safely)" >&2; continue ;; esac
    printf '%s\n' "$k"
  done
}
HOST_CERT_KEYS=""
if [ -n "$ENROLL_TOKEN" ]; then
  HOST_CERT_KEYS=$(list_host_keys | paste -sd' ' -)
elif [ -r "$SYNC_CONF" ]; then
  # A rerun without a token keeps the keys an earlier enrolment certified (and their renewal).
  for k in $(sed -n 's/^HOST_KEYS=//p' "$SYNC_CONF"); do
    case "$k" in *[!A-Za-z0-9._/-]*) continue ;; esac
    [ ! -s "$k-cert.pub" ] || HOST_CERT_KEYS="${HOST_CERT_KEYS:+$HOST_CERT_KEYS }$k"
  done
fi
[ -z "$ENROLL_TOKEN" ] || [ -n "$HOST_CERT_KEYS" ] || die "--enroll-token: no host keys found (sshd -T lists none, no $ROOT/etc/ssh/ssh_host_*_key.pub)"
RELOAD_SSHD=$RELOAD
[ -z "$ROOT" ] || RELOAD_SSHD=0
# Directories the sync writes renewed certificates into (systemd's ReadWritePaths).
HOST_CERT_DIRS=$(for k in $HOST_CERT_KEYS; do dirname "$k"; done | sort -u | paste -sd' ' -)
# ---- jit-ssh host certificates: which keys (end) ----

# ---- 2. KRL sync: install, configure, first run ----
ensure_dir "$ROOT/usr/local/sbin"
make_dir "$STATE_DIR" 0755
install_file "$KRL_SYNC_SRC" "$SYNC_BIN" 0755
cat >"$WORK/sync.conf" <<EOF
# jit-ssh KRL + CA key sync, written by host-setup.sh (rerun it to change). KEY=value, not sourced.
SERVER=$SERVER
KRL=$KRL_FILE
CA_FILE=$CA_FILE
STATE_DIR=$STATE_DIR
MAX_AGE=$MAX_AGE
CACERT=$CACERT
HOST_KEYS=$HOST_CERT_KEYS
RELOAD_SSHD=$RELOAD_SSHD
EOF
install_file "$WORK/sync.conf" "$SYNC_CONF" 0644

sum_of() { if [ -f "$1" ]; then cksum <"$1"; else echo missing; fi; }
before_krl=$(sum_of "$KRL_FILE") before_ca=$(sum_of "$CA_FILE")
if ! "$SYNC_BIN" --config "$SYNC_CONF" --quiet; then
  die "the first KRL/CA sync failed (see above); sshd_config was NOT changed"
fi
[ -s "$KRL_FILE" ] && [ -s "$CA_FILE" ] || die "sync finished but $KRL_FILE or $CA_FILE is empty; sshd_config was NOT changed"
for pair in "$KRL_FILE:$before_krl" "$CA_FILE:$before_ca"; do
  f=${pair%%:*}
  if [ "$(sum_of "$f")" = "${pair#*:}" ]; then say "  unchanged $f"; else say "  synced $f"; CHANGES=$((CHANGES + 1)); fi
done
say "  CA keys trusted: $(ssh-keygen -l -f "$CA_FILE" | awk '{print $2}' | paste -sd' ' -)"

# ---- 3. schedule the sync ----
if [ "$SYNC" = auto ]; then
  if [ -d /run/systemd/system ]; then SYNC=systemd; else SYNC=cron; fi
fi
case "$SYNC" in
  systemd)
    ensure_dir "$ROOT/etc/systemd/system"
    cat >"$WORK/jit-ssh-krl-sync.service" <<EOF
[Unit]
Description=jit-ssh: sync the revocation list and CA keys for sshd
Documentation=file://$SYNC_BIN
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=$SYNC_BIN --config $SYNC_CONF --quiet
ProtectSystem=strict
ReadWritePaths=$ETC $STATE_DIR${HOST_CERT_DIRS:+ $HOST_CERT_DIRS}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE
EOF
    cat >"$WORK/jit-ssh-krl-sync.timer" <<EOF
[Unit]
Description=jit-ssh: sync the revocation list every minute

[Timer]
OnBootSec=10s
OnUnitActiveSec=60s
AccuracySec=5s
RandomizedDelaySec=10s

[Install]
WantedBy=timers.target
EOF
    install_file "$WORK/jit-ssh-krl-sync.service" "$ROOT/etc/systemd/system/jit-ssh-krl-sync.service" 0644
    install_file "$WORK/jit-ssh-krl-sync.timer" "$ROOT/etc/systemd/system/jit-ssh-krl-sync.timer" 0644
    if [ -z "$ROOT" ]; then
      systemctl daemon-reload
      systemctl enable --now jit-ssh-krl-sync.timer >/dev/null 2>&1 || die "systemctl enable --now jit-ssh-krl-sync.timer failed"
      say "  KRL sync: systemd timer jit-ssh-krl-sync.timer enabled (every minute)"
    else
      say "  KRL sync: systemd timer written (not enabled under --root)"
    fi
    ;;
  cron)
    ensure_dir "$ROOT/etc/cron.d"
    cat >"$WORK/cron" <<EOF
# jit-ssh: sync the revocation list and CA keys for sshd every minute (written by host-setup.sh).
# Errors (CA unreachable, stale KRL) go to stderr → cron mail, and to syslog.
* * * * * root $SYNC_BIN --config $SYNC_CONF --quiet
EOF
    install_file "$WORK/cron" "$ROOT/etc/cron.d/jit-ssh-krl-sync" 0644
    if [ -z "$ROOT" ] && ! pgrep -x cron >/dev/null 2>&1 && ! pgrep -x crond >/dev/null 2>&1; then
      say "  WARNING: no cron daemon seems to run: the KRL will not be refreshed until one does"
    fi
    say "  KRL sync: $ROOT/etc/cron.d/jit-ssh-krl-sync (every minute)"
    ;;
  none) say "  KRL sync: not scheduled (--sync none): run $SYNC_BIN --config $SYNC_CONF yourself" ;;
esac

# ---- 3b. session guard: sessions end when their certificate expires or is revoked ----
GUARD_BIN="$ROOT/usr/local/sbin/jit-ssh-session-guard"
GUARD_CONF="$ETC/guard.conf"
GUARD_UNIT="$ROOT/etc/systemd/system/jit-ssh-session-guard.service"
GUARD_CRON="$ROOT/etc/cron.d/jit-ssh-session-guard"
GUARD_MODE=cron
[ -d /run/systemd/system ] && GUARD_MODE=systemd
[ "$SYNC" = systemd ] && GUARD_MODE=systemd
if [ "$GUARD" = 1 ]; then
  install_file "$GUARD_SRC" "$GUARD_BIN" 0755
  cat >"$WORK/guard.conf" <<EOF
# jit-ssh session guard, written by host-setup.sh (rerun it to change). KEY=value, not sourced.
CA_FILE=$CA_FILE
KRL=$KRL_FILE
STATE_DIR=$STATE_DIR
EOF
  install_file "$WORK/guard.conf" "$GUARD_CONF" 0644
  if [ "$GUARD_MODE" = systemd ]; then
    ensure_dir "$ROOT/etc/systemd/system"
    # No PrivateTmp (it must see sshd's /tmp/sshauth.* files) and no ProtectControlGroups
    # (cgroup.kill): it reads every process's environment and signals any user's processes.
    cat >"$WORK/guard.service" <<EOF
[Unit]
Description=jit-ssh: end SSH sessions when their jit-ssh certificate expires or is revoked
Documentation=file://$GUARD_BIN
After=sshd.service ssh.service

[Service]
Type=simple
ExecStart=$GUARD_BIN --config $GUARD_CONF --quiet
Restart=always
RestartSec=2
ProtectSystem=strict
ReadWritePaths=$STATE_DIR
ProtectHome=read-only
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX
LockPersonality=yes

[Install]
WantedBy=multi-user.target
EOF
    install_file "$WORK/guard.service" "$GUARD_UNIT" 0644
    if [ -z "$ROOT" ]; then
      systemctl daemon-reload
      systemctl enable jit-ssh-session-guard.service >/dev/null 2>&1 || die "systemctl enable jit-ssh-session-guard.service failed"
      systemctl restart jit-ssh-session-guard.service || die "systemctl restart jit-ssh-session-guard.service failed"
      say "  session guard: systemd service jit-ssh-session-guard.service running"
    else
      say "  session guard: systemd service written (not started under --root)"
    fi
  else
    ensure_dir "$ROOT/etc/cron.d"
    cat >"$WORK/guard.cron" <<EOF
# jit-ssh session guard (written by host-setup.sh): a supervised loop, started at boot and
# re-checked every minute (--supervise exits at once while a supervisor already runs).
@reboot root $GUARD_BIN --config $GUARD_CONF --quiet --supervise
* * * * * root $GUARD_BIN --config $GUARD_CONF --quiet --supervise
EOF
    install_file "$WORK/guard.cron" "$GUARD_CRON" 0644
    if [ -z "$ROOT" ]; then
      # Start it now rather than at the next minute; a running supervisor makes this a no-op.
      setsid "$GUARD_BIN" --config "$GUARD_CONF" --quiet --supervise </dev/null >/dev/null 2>&1 &
      say "  session guard: supervised loop started (and in $GUARD_CRON for @reboot)"
    else
      say "  session guard: $GUARD_CRON written (not started under --root)"
    fi
  fi
else
  for f in "$GUARD_UNIT" "$GUARD_CRON" "$GUARD_CONF" "$GUARD_BIN"; do
    [ -e "$f" ] || continue
    if [ -z "$ROOT" ] && [ "$f" = "$GUARD_UNIT" ]; then
      systemctl disable --now jit-ssh-session-guard.service >/dev/null 2>&1 || true
    fi
    rm -f "$f"
    say "  removed $f (--no-session-guard)"
    CHANGES=$((CHANGES + 1))
  done
  say "  session guard: not installed (--no-session-guard): sessions outlive their certificate"
fi

# ---- 3c. jit-ssh host certificates: enrolment (begin) ----
if [ -n "$ENROLL_TOKEN" ]; then
  (
    umask 077
    printf '{"token":"%s","target":"%s","publicKeys":[' "$ENROLL_TOKEN" "$TARGET"
    sep=""
    for k in $HOST_CERT_KEYS; do
      # type and base64 only: both are plain ASCII, safe inside a JSON string
      printf '%s"%s"' "$sep" "$(awk '{ print $1 " " $2; exit }' "$k.pub")"
      sep=,
    done
    printf ']}'
  ) >"$WORK/enroll.json"
  if ! curl "${CURL_OPTS[@]}" -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/enroll.json" \
      -o "$WORK/enroll.out" "$SERVER/v1/hosts/enroll?format=plain" 2>"$WORK/curl.err"; then
    body=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$WORK/enroll.out" 2>/dev/null | head -n 1)
    die "host enrolment failed: ${body:-$(head -c 300 "$WORK/curl.err")}; sshd_config was NOT changed"
  fi
  i=0
  for k in $HOST_CERT_KEYS; do
    i=$((i + 1))
    sed -n "${i}p" "$WORK/enroll.out" >"$WORK/cert.$i"
    # The answer must be a host certificate for exactly this key.
    info=$(ssh-keygen -L -f "$WORK/cert.$i" 2>/dev/null) || die "host enrolment: answer line $i is not a certificate"
    printf '%s\n' "$info" | grep -q 'Type: .* host certificate' || die "host enrolment: answer line $i is not a host certificate"
    want=$(ssh-keygen -l -f "$k.pub" | awk '{ print $2 }')
    printf '%s\n' "$info" | grep 'Public key: ' | grep -qF " $want" || die "host enrolment: the certificate on line $i is not for $k.pub"
    install_file "$WORK/cert.$i" "$k-cert.pub" 0644
  done
  names=$(printf '%s\n' "$info" | sed -n '/Principals:/,/Critical Options:/p' | sed '1d;$d' | awk '{ print $1 }' | paste -sd' ' -)
  say "  host certificates for $i key(s): $names"
fi
# ---- 3c. jit-ssh host certificates: enrolment (end) ----

# ---- 4. sshd_config ----
BEGIN_MARK="# BEGIN jit-ssh (managed by host-setup.sh: edits inside this block are replaced)"
END_MARK="# END jit-ssh"
{
  printf '%s\n' "$BEGIN_MARK"
  printf '# At the top on purpose: sshd uses the first value it reads, and lines after a Match belong to it.\n'
  printf 'TrustedUserCAKeys %s\n' "$CA_FILE"
  printf 'AuthorizedPrincipalsFile %s/%%u\n' "$PRINCIPALS_DIR"
  printf 'RevokedKeys %s\n' "$KRL_FILE"
  # The session guard reads which certificate opened a session from SSH_USER_AUTH.
  [ "$GUARD" = 0 ] || printf 'ExposeAuthInfo yes\n'
  # jit-ssh host certificates: one line per host key that has one.
  for k in $HOST_CERT_KEYS; do [ ! -s "$k-cert.pub" ] || printf 'HostCertificate %s\n' "$k-cert.pub"; done
  printf '%s\n' "$END_MARK"
} >"$WORK/block"
# Old block out (wherever it is), new block in at the top, the rest untouched.
awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
  $0 == b { skip = 1; next }
  skip && $0 == e { skip = 0; next }
  !skip { print }
' "$SSHD_CONFIG" >"$WORK/rest"
cat "$WORK/block" "$WORK/rest" >"$WORK/sshd_config.new"

sshd_check() { "$SSHD" -t -f "$1" 2>&1; }
config_changed=0
if cmp -s "$WORK/sshd_config.new" "$SSHD_CONFIG"; then
  say "  unchanged $SSHD_CONFIG"
else
  if ! out=$(sshd_check "$SSHD_CONFIG"); then
    die "$SSHD_CONFIG is already invalid before any jit-ssh change (sshd -t: $out); fix it first"
  fi
  cp -p "$SSHD_CONFIG" "$SSHD_CONFIG.jit-ssh.bak"
  tmp=$(mktemp "$(dirname "$SSHD_CONFIG")/.sshd_config.XXXXXX")
  cp -p "$SSHD_CONFIG" "$tmp" # keeps mode and owner
  cat "$WORK/sshd_config.new" >"$tmp"
  mv -f "$tmp" "$SSHD_CONFIG"
  if ! out=$(sshd_check "$SSHD_CONFIG"); then
    tmp=$(mktemp "$(dirname "$SSHD_CONFIG")/.sshd_config.XXXXXX")
    cp -p "$SSHD_CONFIG.jit-ssh.bak" "$tmp" && mv -f "$tmp" "$SSHD_CONFIG"
    die "sshd -t rejected the new $SSHD_CONFIG, restored the previous one: $out"
  fi
  config_changed=1
  CHANGES=$((CHANGES + 1))
  say "  updated $SSHD_CONFIG: jit-ssh block (TrustedUserCAKeys, AuthorizedPrincipalsFile, RevokedKeys); previous in $SSHD_CONFIG.jit-ssh.bak"
fi
say "  ok sshd -t -f $SSHD_CONFIG"
# sshd -T prints the effective values: prove ours are the ones sshd will use.
if effective=$("$SSHD" -T -f "$SSHD_CONFIG" 2>/dev/null); then
  for want in "trustedusercakeys $CA_FILE" "authorizedprincipalsfile $PRINCIPALS_DIR/%u" "revokedkeys $KRL_FILE"; do
    printf '%s\n' "$effective" | grep -qxF "$want" || die "sshd -T does not show '$want': another setting overrides it (check Include files)"
  done
  if [ "$GUARD" = 1 ] && ! printf '%s\n' "$effective" | grep -qxF "exposeauthinfo yes"; then
    die "sshd -T does not show 'exposeauthinfo yes': the session guard cannot see certificates (check Include files)"
  fi
  say "  ok sshd -T shows the jit-ssh settings in effect"
fi

# ---- 5. reload ----
if [ "$config_changed" = 1 ]; then
  if [ -n "$ROOT" ] || [ "$RELOAD" = 0 ]; then
    say "  sshd not reloaded: reload it to apply (e.g. systemctl reload ssh)"
  elif [ -d /run/systemd/system ] && { systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null; }; then
    say "  reloaded sshd"
  elif [ -f /run/sshd.pid ] && kill -HUP "$(cat /run/sshd.pid)" 2>/dev/null; then
    say "  reloaded sshd (SIGHUP)"
  else
    say "  WARNING: could not reload sshd: reload it yourself to apply the new sshd_config"
  fi
fi

say "done: $CHANGES change(s)"
