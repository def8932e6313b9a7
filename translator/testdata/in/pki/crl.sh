#!/bin/sh
# Regenerates the test CRLs (run from this directory, after gen.sh):
# ca.crl, signed by ca.key, revokes client.crt; other.crl has the same
# issuer name but is signed by other.key (a CRL the client CA did not
# sign). Only the CRLs change, not the certificates. They are version 2
# CRLs (with a CRL number and the issuer's key id), as Go requires.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $tmp/index.txt
default_md = sha256
default_crl_days = 36500
crlnumber = $tmp/crlnumber
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
CNF
echo 01 > "$tmp/crlnumber"
serial=$(openssl x509 -in client.crt -noout -serial | cut -d= -f2)
printf 'R\t21260101000000Z\t260101000000Z\t%s\tunknown\t/CN=frontdoor-gateway\n' "$serial" > "$tmp/index.txt"
openssl ca -gencrl -config "$tmp/ca.cnf" -keyfile ca.key -cert ca.crt -out ca.crl
# An impostor CA: the client CA's name, another key.
openssl req -x509 -new -key other.key -out "$tmp/other.crt" -days 36500 -subj "/CN=frontdoor-test-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
: > "$tmp/index.txt"
openssl ca -gencrl -config "$tmp/ca.cnf" -keyfile other.key -cert "$tmp/other.crt" -out other.crl
