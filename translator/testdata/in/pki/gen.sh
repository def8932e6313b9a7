#!/bin/sh
# Regenerates the test PKI (run from this directory). The outputs are
# committed; regenerating changes every golden file's secret hashes and
# the versions, so only do it when a certificate must change.
set -eu
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
  -days $days -subj "/CN=frontdoor-test-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name subject sans eku
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s' "$4" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days $days -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
leaf serving "/CN=frontdoor" "subjectAltName=DNS:*.example.com,DNS:localhost,IP:127.0.0.1" serverAuth
leaf client "/O=system:masters/CN=frontdoor-gateway" "" clientAuth
rm -f ca.srl
# A valid key that matches no certificate here.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key
# The CRLs, signed with the keys above.
./crl.sh
