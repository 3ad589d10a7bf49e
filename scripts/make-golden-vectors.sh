#!/bin/sh
# Regenerates test/ca/vectors/: certificates signed by the real ssh-keygen, which
# test/ca/cert.test.ts must reproduce with our encoder (byte for byte where the signature
# is deterministic: ed25519 and RSA). Every key in there is a throwaway test key.
#
#   scripts/make-golden-vectors.sh [OUT_DIR]    (default: test/ca/vectors)
set -eu

OUT=${1:-"$(dirname "$0")/../test/ca/vectors"}
KEYGEN=${SSH_KEYGEN:-ssh-keygen}
# -V dates are read in local time: pin the zone so the vectors do not depend on the machine.
export TZ=UTC

rm -rf "$OUT"
mkdir -p "$OUT"
cat > "$OUT/README.md" <<'EOF'
Golden certificate vectors made by `scripts/make-golden-vectors.sh` with OpenSSH's ssh-keygen.
All private keys in this folder are TEST-ONLY keys, generated for these vectors: never trust them.

- `ca-<type>` / `ca-<type>.pub`: CA keys (ed25519, ecdsa256/384/521, rsa3072).
- `subject-<type>.pub`: subject public keys.
- `<ca>__<subject>__<case>-cert.pub`: `ssh-keygen -s ca-<ca>` over `subject-<subject>.pub`; the
  case's ssh-keygen options are in `cases.txt` (one line: case name, serial, options).
EOF

for t in ed25519 ecdsa256 ecdsa384 ecdsa521 rsa3072; do
  case $t in
    ed25519) args="-t ed25519" ;;
    ecdsa*) args="-t ecdsa -b ${t#ecdsa}" ;;
    rsa*) args="-t rsa -b ${t#rsa}" ;;
  esac
  # shellcheck disable=SC2086
  $KEYGEN -q $args -N '' -C "test-ca-$t" -f "$OUT/ca-$t"
done
for t in ed25519 ecdsa256 ecdsa384 rsa3072; do
  case $t in
    ed25519) args="-t ed25519" ;;
    ecdsa*) args="-t ecdsa -b ${t#ecdsa}" ;;
    rsa*) args="-t rsa -b ${t#rsa}" ;;
  esac
  # shellcheck disable=SC2086
  $KEYGEN -q $args -N '' -C "subject-$t" -f "$OUT/subject-$t"
  rm "$OUT/subject-$t" # only the public half is needed
done

# case serial options… (ssh-keygen -O clear drops the default permit-* extensions)
cat > "$OUT/cases.txt" <<'EOF'
defaults 1
minimal 42 -O clear
options 18446744073709551615 -O clear -O force-command=echo forced -O source-address=127.0.0.1/32,10.0.0.0/8 -O permit-pty -O permit-port-forwarding
verify 7 -O clear -O verify-required -O no-touch-required -O permit-agent-forwarding
EOF

while read -r name serial opts; do
  for ca in ed25519 ecdsa256 ecdsa384 ecdsa521 rsa3072; do
    for sub in ed25519 ecdsa256 ecdsa384 rsa3072; do
      cp "$OUT/subject-$sub.pub" "$OUT/tmp.pub"
      sigtype=""
      [ "$ca" = rsa3072 ] && sigtype="-t rsa-sha2-512"
      # "echo forced" has a space: re-split opts on " -O " so each option stays one argument.
      set -- 
      rest=$opts
      while [ -n "$rest" ]; do
        rest=${rest#-O }
        case $rest in
          *" -O "*) opt=${rest%% -O *}; rest=${rest#"$opt"}; rest=${rest# } ;;
          *) opt=$rest; rest="" ;;
        esac
        set -- "$@" -O "$opt"
      done
      # shellcheck disable=SC2086
      $KEYGEN -q -s "$OUT/ca-$ca" $sigtype -I "golden:$name:$ca:$sub" -n p1,p2 \
        -V 20250101:20250102 -z "$serial" "$@" "$OUT/tmp.pub"
      mv "$OUT/tmp-cert.pub" "$OUT/${ca}__${sub}__${name}-cert.pub"
    done
  done
done < "$OUT/cases.txt"
rm -f "$OUT/tmp.pub"
echo "wrote $(ls "$OUT"/*-cert.pub | wc -l) certificates to $OUT"
