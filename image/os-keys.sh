#!/usr/bin/env bash
# Make a DEVELOPMENT key pair for signing OS bundles (RAUC, X.509/CMS), in DIR, outside any image:
#
#   image/os-keys.sh DIR
#
#   DIR/ca.key.pem, ca.cert.pem            the CA: its certificate is the image's keyring
#   DIR/signing.key.pem, signing.cert.pem  the signing certificate the CA issued (what bundles carry)
#
# For builds and tests only: a fleet's CA key is made and kept offline (app/ota/README.md, "OS
# bundles: keys and rotation"), and `make image` takes its certificate with OS_KEYRING=FILE.
# Does nothing when DIR already holds a CA.
set -euo pipefail
dir=${1:?usage: os-keys.sh DIR}
[ -f "$dir/ca.cert.pem" ] && exit 0
mkdir -p "$dir"
chmod 0700 "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/ca.ext" <<'CNF'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
CNF
cat >"$tmp/signing.ext" <<'CNF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key.pem"
openssl req -new -x509 -key "$dir/ca.key.pem" -subj "/O=wattsmart-gateway development/CN=OS bundle CA (development)" \
    -days 3650 -sha256 -extensions v3 -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[v3]\n%s\n' "$(cat "$tmp/ca.ext")") \
    -out "$dir/ca.cert.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/signing.key.pem"
openssl req -new -key "$dir/signing.key.pem" -subj "/O=wattsmart-gateway development/CN=OS bundle signing (development)" \
    -out "$tmp/signing.csr"
openssl x509 -req -in "$tmp/signing.csr" -CA "$dir/ca.cert.pem" -CAkey "$dir/ca.key.pem" -CAcreateserial \
    -days 730 -sha256 -extfile "$tmp/signing.ext" -out "$dir/signing.cert.pem" 2>/dev/null
rm -f "$dir/ca.cert.srl"
chmod 0600 "$dir"/*.key.pem
echo "os-keys: development CA and signing certificate in $dir (not for the fleet)"
