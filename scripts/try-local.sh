#!/usr/bin/env bash
# Try jit-ssh on one machine: a private jit-sshd and a private OpenSSH sshd on loopback, a real
# `jit-ssh login`, a real `ssh … echo ok` with the certificate, then `jit-ssh done` and the same
# ssh refused once the host has the new KRL. Everything lives in one temp dir that is removed
# at the end (also on Ctrl-C or failure); nothing outside it is touched, no root needed.
#
#   scripts/try-local.sh          # run the tour and clean up
#   scripts/try-local.sh --keep   # leave both daemons running and print how to use them; Ctrl-C ends
#
# Needs: node ≥ 20 with this repository built (`npm install` does it), ssh, sshd, ssh-keygen.
set -euo pipefail

KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  '') ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--keep]" >&2; exit 1 ;;
esac

REPO=$(cd "$(dirname "$0")/.." && pwd)
NODE=${NODE:-node}
die() { echo "try-local: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

command -v "$NODE" >/dev/null || die "node not found"
SSHD=$(command -v sshd || echo /usr/sbin/sshd) # sshd must be run by its absolute path
[ -x "$SSHD" ] || die "sshd not found (Debian/Ubuntu: apt-get install -y openssh-server)"
for tool in ssh ssh-keygen; do command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y openssh-client)"; done
"$NODE" "$REPO/scripts/build-if-stale.mjs" || die "build failed (run npm install first)"

ME=$(id -un)
[[ "$ME" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] || die "your user name '$ME' is not a jit-ssh name (letters, digits, . _ -)"
if [ "$(id -u)" = 0 ]; then
  # With UsePAM no, sshd refuses accounts whose password field is locked ('!…'); say so plainly.
  PW=$(getent shadow "$ME" 2>/dev/null | cut -d: -f2 || true)
  case "$PW" in '!'*) die "account $ME is locked, so sshd refuses it; unlock it without a password: usermod -p '*' $ME" ;; esac
  mkdir -p /run/sshd # sshd's privilege separation dir
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jit-try-local.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "try-local: working in $TMP (removed at the end)"

free_port() { "$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
# GET URL > stdout (no curl needed); fails on any non-2xx answer.
http_get() { "$NODE" -e 'fetch(process.argv[1]).then(async r=>{if(!r.ok){console.error(`${r.status} ${await r.text()}`);process.exit(1)}process.stdout.write(Buffer.from(await r.arrayBuffer()))})' "$1"; }
wait_for() { # wait_for WHAT COMMAND… : up to 15 s
  local what=$1; shift
  for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up"
}

step "1. a login key for you ($ME) and a policy that lets you log in to this machine"
ssh-keygen -q -t ed25519 -N '' -C "$ME@try-local" -f "$TMP/login_ed25519"
CA_PORT=$(free_port)
SSHD_PORT=$(free_port)
cat >"$TMP/policy.yaml" <<EOF
# Made by scripts/try-local.sh: one user (you), one target (this machine's private sshd).
defaults: { ttl: 15m, maxTtl: 1h, backdate: 60s }
users:
  $ME: { groups: [try], keys: ["$(cat "$TMP/login_ed25519.pub")"] }
targets:
  local: { description: "a private sshd on 127.0.0.1:$SSHD_PORT", hosts: [127.0.0.1], accounts: [$ME] }
tasks:
  try: { description: try jit-ssh, accounts: [$ME], maxTtl: 15m }
rules:
  - { name: try-auto, groups: [try], targets: [local], tasks: [try], approval: auto }
EOF
cat >"$TMP/jit-sshd.yaml" <<EOF
listen: 127.0.0.1:$CA_PORT
dataDir: $TMP/data
policy: $TMP/policy.yaml
EOF
JITSSHD=("$NODE" "$REPO/dist/cli/jit-sshd.js")
"${JITSSHD[@]}" policy validate --config "$TMP/jit-sshd.yaml"

step "2. jit-sshd on 127.0.0.1:$CA_PORT (a fresh CA key in $TMP/data)"
"${JITSSHD[@]}" serve --config "$TMP/jit-sshd.yaml" >"$TMP/jit-sshd.log" 2>&1 &
PIDS+=($!)
S=http://127.0.0.1:$CA_PORT
wait_for jit-sshd http_get "$S/healthz"
http_get "$S/healthz"; echo

step "3. an sshd on 127.0.0.1:$SSHD_PORT that trusts the CA (files from GET /v1/ca, /v1/host-config, /v1/krl)"
H=$TMP/host
mkdir -p "$H/principals"
http_get "$S/v1/ca" >"$H/ca.pub"
http_get "$S/v1/krl" >"$H/revoked.krl"
http_get "$S/v1/host-config?target=local&format=plain" | while IFS=$'\t' read -r kind account principal; do
  [ "$kind" = principal ] && echo "$principal" >>"$H/principals/$account"
done
echo "principals/$ME: $(cat "$H/principals/$ME")"
ssh-keygen -q -t ed25519 -N '' -C try-local-host -f "$H/host_ed25519"
cat >"$H/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $H/host_ed25519
PidFile $H/sshd.pid
# A temp dir is not root-owned and an ordinary test account has no PAM session here.
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
AuthorizedKeysFile none
PermitRootLogin prohibit-password
# The three lines a real host gets from scripts/host-setup.sh:
TrustedUserCAKeys $H/ca.pub
AuthorizedPrincipalsFile $H/principals/%u
RevokedKeys $H/revoked.krl
EOF
"$SSHD" -t -f "$H/sshd_config"
"$SSHD" -D -e -f "$H/sshd_config" 2>"$TMP/sshd.log" &
PIDS+=($!)
wait_for sshd grep -q "Server listening" "$TMP/sshd.log"
echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1-2 "$H/host_ed25519.pub")" >"$TMP/known_hosts"

export JITSSH_SERVER=$S JITSSH_USER=$ME JITSSH_IDENTITY=$TMP/login_ed25519 JITSSH_DIR=$TMP/jit
export JITSSH_SSH_OPTS="-p $SSHD_PORT -o UserKnownHostsFile=$TMP/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
JITSSH=("$NODE" "$REPO/dist/cli/jit-ssh.js")

step "4. jit-ssh login local --task try"
"${JITSSH[@]}" login local --task try --reason "trying jit-ssh" --no-agent

step "5. ssh with the certificate: jit-ssh ssh local -- echo ok"
"${JITSSH[@]}" ssh local -- echo ok

if [ "$KEEP" = 1 ]; then
  step "both daemons keep running until Ctrl-C. In another shell:"
  cat <<EOF
export JITSSH_SERVER=$JITSSH_SERVER JITSSH_USER=$ME JITSSH_IDENTITY=$JITSSH_IDENTITY JITSSH_DIR=$JITSSH_DIR
export JITSSH_SSH_OPTS="$JITSSH_SSH_OPTS"
alias jit-ssh="$NODE $REPO/dist/cli/jit-ssh.js"
jit-ssh targets; jit-ssh status; jit-ssh ssh local
EOF
  wait
  exit 0
fi

step "6. jit-ssh done local, the host syncs the KRL, and the same certificate is refused"
cp "$TMP/jit/local-cert.pub" "$TMP/kept-cert.pub"; cp "$TMP/jit/local" "$TMP/kept-key"
"${JITSSH[@]}" done local
http_get "$S/v1/krl" >"$H/revoked.krl.new" && mv "$H/revoked.krl.new" "$H/revoked.krl"
if ssh -i "$TMP/kept-key" -o CertificateFile="$TMP/kept-cert.pub" -o IdentitiesOnly=yes $JITSSH_SSH_OPTS "$ME@127.0.0.1" echo ok 2>/dev/null; then
  die "the revoked certificate still logged in"
fi
echo "refused, as it should be ($(grep -c 'revoked' "$TMP/sshd.log" || true) 'revoked' lines in sshd's log)"

step "done: cleaning up $TMP"
