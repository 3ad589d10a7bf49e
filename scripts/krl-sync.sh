#!/usr/bin/env bash
# jit-ssh KRL sync: keep sshd's RevokedKeys file (and optionally TrustedUserCAKeys) current.
#
#   krl-sync.sh --config /etc/ssh/jit-ssh/sync.conf
#   krl-sync.sh --server URL --krl FILE [--ca-file FILE] [--state-dir DIR] [--max-age SECONDS]
#               [--cacert FILE] [--timeout SECONDS] [--quiet]
#
# Fail-safe rules, because sshd refuses EVERY key when RevokedKeys is missing or unreadable:
#   - the KRL file is only ever replaced by rename(2) of a complete file that `ssh-keygen -Q -l`
#     parsed, so it is never missing, half-written or empty by error;
#   - when the CA is unreachable, answers an error, or sends something that is not a KRL, the
#     last good file stays and the run fails (exit 1);
#   - a KRL whose version is lower than the installed one is refused (a replayed old KRL would
#     un-revoke certificates), and so is one whose version is not an unsigned 64-bit number;
#     --allow-rollback accepts an older one once, e.g. after restoring the CA;
#   - when the last successful sync is older than --max-age (default 3600 s) every run logs an
#     ERROR line to stderr and syslog and exits 2, so monitoring and cron mail notice.
# With --ca-file the CA public keys (GET /v1/ca) are refreshed the same way, so a CA rotation
# reaches the host at its next sync; a response without at least one valid key is refused.
# With HOST_KEYS (host keys whose <key>-cert.pub jit-ssh issued, written by host-setup.sh
# --enroll-token) each run renews those host certificates when less than a third of their
# validity is left (POST /v1/hosts/renew, signed by the host key); a failed renewal keeps the
# current certificate, an expired one is logged loudly; RELOAD_SSHD=1 reloads sshd after a renewal.
# The config file holds KEY=value lines (SERVER, KRL, CA_FILE, STATE_DIR, MAX_AGE, CACERT,
# TIMEOUT, HOST_KEYS, RELOAD_SSHD); it is read, never sourced. Command-line options override it.
set -eu
umask 022

PROG=jit-ssh-krl-sync
SERVER="" KRL="" CA_FILE="" STATE_DIR="/var/lib/jit-ssh" MAX_AGE=3600 CACERT="" TIMEOUT=20
QUIET=0 ALLOW_ROLLBACK=0 CONFIG=""
HOST_KEYS="" RELOAD_SSHD=0

log() { [ "$QUIET" = 1 ] || printf '%s: %s\n' "$PROG" "$*" >&2; }
# Loud: stderr always, plus syslog when nobody watches stderr (cron; systemd already journals it).
loud() {
  printf '%s: ERROR: %s\n' "$PROG" "$*" >&2
  if [ -z "${JOURNAL_STREAM:-}" ] && [ ! -t 2 ] && command -v logger >/dev/null 2>&1; then
    logger -t "$PROG" -p authpriv.err -- "ERROR: $*" 2>/dev/null || true
  fi
}
die() { loud "$*"; exit 1; }
usage() { sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

read_config() {
  [ -r "$1" ] || die "config file $1 is not readable"
  local key value
  while IFS='=' read -r key value || [ -n "$key" ]; do
    case "$key" in ''|'#'*) continue ;; esac
    value=${value%\"}; value=${value#\"}
    case "$key" in
      SERVER) SERVER=$value ;; KRL) KRL=$value ;; CA_FILE) CA_FILE=$value ;;
      STATE_DIR) STATE_DIR=$value ;; MAX_AGE) MAX_AGE=$value ;; CACERT) CACERT=$value ;;
      TIMEOUT) TIMEOUT=$value ;;
      HOST_KEYS) HOST_KEYS=$value ;; RELOAD_SSHD) RELOAD_SSHD=$value ;;
      *) die "config file $1: unknown key $key" ;;
    esac
  done <"$1"
}

# Config first, so command-line options override it wherever they appear.
prev=""
for a in "$@"; do
  [ "$prev" = "--config" ] && CONFIG=$a
  prev=$a
done
[ -n "$CONFIG" ] && read_config "$CONFIG"

while [ $# -gt 0 ]; do
  case "$1" in
    --config) shift ;;
    --server) SERVER=${2:?--server needs a URL}; shift ;;
    --krl) KRL=${2:?--krl needs a file}; shift ;;
    --ca-file) CA_FILE=${2:?--ca-file needs a file}; shift ;;
    --state-dir) STATE_DIR=${2:?--state-dir needs a directory}; shift ;;
    --max-age) MAX_AGE=${2:?--max-age needs seconds}; shift ;;
    --cacert) CACERT=${2:?--cacert needs a file}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift ;;
    --allow-rollback) ALLOW_ROLLBACK=1 ;;
    --quiet) QUIET=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$PROG: unknown option $1 (see --help)" >&2; exit 1 ;;
  esac
  shift
done

[ -n "$SERVER" ] || { echo "$PROG: --server URL (or SERVER= in --config) is required" >&2; exit 1; }
[ -n "$KRL" ] || { echo "$PROG: --krl FILE (or KRL= in --config) is required" >&2; exit 1; }
case "$MAX_AGE" in ''|*[!0-9]*) echo "$PROG: --max-age must be whole seconds" >&2; exit 1 ;; esac
case "$TIMEOUT" in ''|*[!0-9]*) echo "$PROG: --timeout must be whole seconds" >&2; exit 1 ;; esac
SERVER=${SERVER%/}
for tool in curl ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (apt-get install curl openssh-client)"
done

mkdir -p "$STATE_DIR"
ETAG_FILE="$STATE_DIR/krl.etag"
OK_FILE="$STATE_DIR/last-success"

# One run at a time (cron and a manual run must not interleave renames).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STATE_DIR/sync.lock"
  flock -w 60 9 || die "another sync holds $STATE_DIR/sync.lock"
fi

KRL_DIR=$(dirname "$KRL")
mkdir -p "$KRL_DIR"
# Temp files live beside their targets so the final rename is atomic on one file system.
TMP_KRL=$(mktemp "$KRL_DIR/.revoked.krl.XXXXXX")
TMP_HDR=$(mktemp "$STATE_DIR/.krl-headers.XXXXXX")
TMP_CA=""
cleanup() { rm -f "$TMP_KRL" "$TMP_HDR" ${TMP_CA:+"$TMP_CA"}; }
trap cleanup EXIT

CURL_OPTS=(--silent --show-error --max-time "$TIMEOUT" --connect-timeout 10 --proto =http,https)
[ -n "$CACERT" ] && CURL_OPTS+=(--cacert "$CACERT")

stale_check() {
  local last now age
  last=$(cat "$OK_FILE" 2>/dev/null || echo 0)
  case "$last" in ''|*[!0-9]*) last=0 ;; esac
  now=$(date +%s)
  age=$((now - last))
  if [ "$age" -gt "$MAX_AGE" ]; then
    if [ "$last" = 0 ]; then
      loud "KRL $KRL has never been synced successfully from $SERVER"
    else
      loud "KRL $KRL is STALE: last successful sync ${age}s ago (max ${MAX_AGE}s); revocations since then are NOT enforced"
    fi
    return 1
  fi
  return 0
}

fail() {
  loud "$*"
  stale_check || exit 2
  exit 1
}

krl_version() { ssh-keygen -Q -l -f "$1" 2>/dev/null | sed -n 's/^# KRL version \(.*\)$/\1/p' | head -n 1; }

# u64-begin: KRL versions are unsigned 64-bit; bash integer tests overflow past 2^63-1 and a test
# that errors out must never let a rollback through. So: strict decimal strings, compared by
# length, then lexically (same length, no leading zeros: lexical order is numeric order).
U64_MAX=18446744073709551615
# True when $1 is a canonical decimal in [0, 2^64-1].
is_u64() {
  case "$1" in '' | *[!0-9]*) return 1 ;; 0) return 0 ;; 0*) return 1 ;; esac
  [ "${#1}" -lt "${#U64_MAX}" ] && return 0
  [ "${#1}" -eq "${#U64_MAX}" ] && ! [[ "$1" > "$U64_MAX" ]]
}
# True when $1 < $2; both must already satisfy is_u64.
u64_lt() {
  [ "${#1}" -ne "${#2}" ] && { [ "${#1}" -lt "${#2}" ]; return; }
  [[ "$1" < "$2" ]]
}
# u64-end

# ---- KRL ----
etag=""
# Without the file a 304 would leave the host with nothing: fetch in full.
[ -s "$KRL" ] && etag=$(cat "$ETAG_FILE" 2>/dev/null || true)
hdr_opts=()
[ -n "$etag" ] && hdr_opts=(-H "If-None-Match: $etag")
code=$(curl "${CURL_OPTS[@]}" ${hdr_opts[@]+"${hdr_opts[@]}"} -D "$TMP_HDR" -o "$TMP_KRL" -w '%{http_code}' "$SERVER/v1/krl" 2>"$TMP_HDR.err") || {
  err=$(head -c 300 "$TMP_HDR.err" 2>/dev/null); rm -f "$TMP_HDR.err"
  fail "cannot reach $SERVER/v1/krl: ${err:-curl failed}; keeping the last good KRL $KRL"
}
rm -f "$TMP_HDR.err"

case "$code" in
  304)
    log "KRL unchanged ($etag)"
    ;;
  200)
    [ -s "$TMP_KRL" ] || fail "$SERVER/v1/krl answered 200 with an empty body; keeping the last good KRL $KRL"
    ssh-keygen -Q -l -f "$TMP_KRL" >/dev/null 2>&1 || fail "$SERVER/v1/krl answered with something that is not a valid KRL ($(wc -c <"$TMP_KRL") bytes); keeping the last good KRL $KRL"
    new_version=$(krl_version "$TMP_KRL")
    is_u64 "$new_version" || fail "$SERVER/v1/krl sent a KRL whose version ('$(printf %.40s "$new_version")') is not an unsigned 64-bit number; keeping the last good KRL $KRL"
    old_version=""
    if [ -s "$KRL" ]; then
      old_version=$(krl_version "$KRL")
      # Unsure which is newer: refuse, as for an older one (the guard must fail closed).
      if ! is_u64 "$old_version" && [ "$ALLOW_ROLLBACK" != 1 ]; then
        fail "the installed KRL $KRL has no readable version ('$(printf %.40s "$old_version")'), so a rollback cannot be ruled out; rerun with --allow-rollback if intended"
      fi
    fi
    if is_u64 "$old_version" && u64_lt "$new_version" "$old_version" && [ "$ALLOW_ROLLBACK" != 1 ]; then
      fail "$SERVER/v1/krl sent KRL version $new_version, older than the installed $old_version (replay or CA state loss?); rerun with --allow-rollback if intended"
    fi
    if [ -s "$KRL" ] && cmp -s "$TMP_KRL" "$KRL"; then
      log "KRL version ${new_version:-?} already installed"
    else
      chmod 0644 "$TMP_KRL"
      mv -f "$TMP_KRL" "$KRL"
      log "installed KRL version ${new_version:-?} at $KRL"
      # Wake a running session guard so sessions of newly revoked certificates end now. Opened
      # read-write: never blocks, and with no guard reading the line is simply dropped.
      [ -p "$STATE_DIR/session-guard.poke" ] && { printf 'krl\n' 1<>"$STATE_DIR/session-guard.poke"; } 2>/dev/null || true
    fi
    new_etag=$(tr -d '\r' <"$TMP_HDR" | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' | tail -n 1)
    if [ -n "$new_etag" ]; then printf '%s\n' "$new_etag" >"$ETAG_FILE.tmp" && mv -f "$ETAG_FILE.tmp" "$ETAG_FILE"; fi
    ;;
  *) fail "$SERVER/v1/krl answered HTTP $code; keeping the last good KRL $KRL" ;;
esac

# ---- CA public keys (TrustedUserCAKeys) ----
if [ -n "$CA_FILE" ]; then
  TMP_CA=$(mktemp "$(dirname "$CA_FILE")/.ca.pub.XXXXXX")
  code=$(curl "${CURL_OPTS[@]}" -o "$TMP_CA" -w '%{http_code}' "$SERVER/v1/ca" 2>/dev/null) || fail "cannot reach $SERVER/v1/ca; keeping $CA_FILE"
  [ "$code" = 200 ] || fail "$SERVER/v1/ca answered HTTP $code; keeping $CA_FILE"
  # Plain key lines only: no authorized_keys options, no certificates, at least one key.
  lines=$(grep -c . "$TMP_CA" || true)
  if [ "$lines" -lt 1 ] || grep -v -E '^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+=*( [^[:cntrl:]]*)?$' "$TMP_CA" | grep -q .; then
    fail "$SERVER/v1/ca did not answer with CA public key lines; keeping $CA_FILE"
  fi
  keys=$(ssh-keygen -l -f "$TMP_CA" 2>/dev/null | grep -c . || true)
  [ "$keys" = "$lines" ] || fail "$SERVER/v1/ca sent $lines lines but ssh-keygen reads $keys keys; keeping $CA_FILE"
  if [ -s "$CA_FILE" ] && cmp -s "$TMP_CA" "$CA_FILE"; then
    log "CA keys unchanged ($keys)"
  else
    chmod 0644 "$TMP_CA"
    mv -f "$TMP_CA" "$CA_FILE"
    TMP_CA=""
    log "installed $keys CA key(s) at $CA_FILE"
  fi
fi

date +%s >"$OK_FILE.tmp" && mv -f "$OK_FILE.tmp" "$OK_FILE"

# ---- jit-ssh host certificates: renewal (begin) ----
# Seconds since the epoch of a certificate's "from"/"to" time (ssh-keygen -L, printed in UTC).
cert_time() { TZ=UTC ssh-keygen -L -f "$1" 2>/dev/null | sed -n "s/^ *Valid: from \([^ ]*\) to \([^ ]*\)$/\\$2/p" | { read -r t && date -u -d "$t" +%s; }; }
renew_host_certs() {
  local k cert from to now due="" i=0 challenge sep="" out
  now=$(date +%s)
  for k in $HOST_KEYS; do
    cert="$k-cert.pub"
    if [ ! -s "$cert" ]; then log "no host certificate $cert yet (host-setup.sh --enroll-token)"; continue; fi
    from=$(cert_time "$cert" 1) && to=$(cert_time "$cert" 2) || { loud "cannot read the validity of $cert"; continue; }
    if [ "$to" -le "$now" ]; then
      loud "host certificate $cert EXPIRED at $(date -u -d "@$to" +%FT%TZ): clients refuse this host; enrol again (jit-sshd host token, host-setup.sh --enroll-token-file)"
      continue
    fi
    # Renew when less than a third of the validity is left.
    if [ $((to - now)) -lt $(((to - from) / 3)) ]; then due="${due:+$due }$k"; else log "host certificate $cert valid until $(date -u -d "@$to" +%FT%TZ)"; fi
  done
  [ -n "$due" ] || return 0
  HC_TMP=$(mktemp -d "$STATE_DIR/.host-renew.XXXXXX")
  trap 'cleanup; rm -rf "$HC_TMP"' EXIT
  challenge=$(curl "${CURL_OPTS[@]}" --fail -X POST "$SERVER/v1/hosts/challenge?format=plain" 2>/dev/null) || { loud "host certificate renewal: cannot get a challenge from $SERVER; keeping the current certificates"; return 1; }
  case "$challenge" in *[!\ -~]* | *'"'* | *'\'* | '') loud "host certificate renewal: $SERVER sent an unusable challenge; keeping the current certificates"; return 1 ;; esac
  {
    printf '{"challenge":"%s","renewals":[' "$challenge"
    for k in $due; do
      # ssh-keygen signs stdin with the host's own private key; the server checks it matches the certificate.
      printf '%s' "$challenge" | ssh-keygen -Y sign -n jit-ssh-host -f "$k" >"$HC_TMP/sig" 2>"$HC_TMP/sig.err" || { loud "host certificate renewal: ssh-keygen -Y sign with $k failed: $(head -c 200 "$HC_TMP/sig.err")"; return 1; }
      printf '%s{"certificate":"%s","signature":"%s"}' "$sep" "$(awk '{ print $1 " " $2; exit }' "$k-cert.pub")" "$(awk '{ printf "%s\\n", $0 }' "$HC_TMP/sig")"
      sep=,
    done
    printf ']}'
  } >"$HC_TMP/body.json" || return 1
  local fail_opt=--fail-with-body
  curl --help all 2>/dev/null | grep -q -- --fail-with-body || fail_opt=--fail
  if ! curl "${CURL_OPTS[@]}" "$fail_opt" -X POST -H 'Content-Type: application/json' --data-binary "@$HC_TMP/body.json" -o "$HC_TMP/out" "$SERVER/v1/hosts/renew?format=plain" 2>/dev/null; then
    out=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$HC_TMP/out" 2>/dev/null | head -n 1)
    loud "host certificate renewal refused by $SERVER: ${out:-no answer}; keeping the current certificates"
    return 1
  fi
  for k in $due; do
    i=$((i + 1))
    sed -n "${i}p" "$HC_TMP/out" >"$HC_TMP/cert.$i"
    # Only a host certificate for this very key replaces the current one.
    if ! TZ=UTC ssh-keygen -L -f "$HC_TMP/cert.$i" 2>/dev/null | grep -q 'Type: .* host certificate' ||
      ! TZ=UTC ssh-keygen -L -f "$HC_TMP/cert.$i" | grep 'Public key: ' | grep -qF " $(ssh-keygen -l -f "$k.pub" | awk '{ print $2 }')"; then
      loud "host certificate renewal: answer line $i is not a host certificate for $k; keeping the current one"
      return 1
    fi
    tmp=$(mktemp "$(dirname "$k")/.$(basename "$k")-cert.pub.XXXXXX")
    cat "$HC_TMP/cert.$i" >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$k-cert.pub"
    log "renewed host certificate $k-cert.pub until $(date -u -d "@$(cert_time "$k-cert.pub" 2)" +%FT%TZ)"
  done
  if [ "$RELOAD_SSHD" = 1 ]; then
    # sshd reads host certificates when it starts or reloads.
    if [ -d /run/systemd/system ] && { systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null; }; then log "reloaded sshd"
    elif [ -f /run/sshd.pid ] && kill -HUP "$(cat /run/sshd.pid)" 2>/dev/null; then log "reloaded sshd (SIGHUP)"
    else loud "renewed host certificates but could not reload sshd: reload it to serve them"; fi
  fi
}
if [ -n "$HOST_KEYS" ]; then renew_host_certs || exit 1; fi
# ---- jit-ssh host certificates: renewal (end) ----
exit 0
