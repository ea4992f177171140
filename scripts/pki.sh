#!/usr/bin/env bash
# A throwaway certificate authority for the TLS tests and the secured demo, made with the openssl
# command line (Debian's openssl, installed with the system).
#
#   scripts/pki.sh DIR     writes, unless DIR/ca.pem exists already:
#     ca.pem ca.key              the test CA
#     server.pem server.key      for 127.0.0.1 and localhost, signed by the CA (Kafka, etcd)
#     server-keystore.pem        server.key then server.pem: Kafka's PEM keystore
#     client.pem client.key      CN=logcatch, signed by the CA (mutual TLS)
#     other-ca.pem               an unrelated CA (the "wrong CA" tests)
# Keys are unencrypted PKCS#8, mode 600. Valid 30 days.
set -euo pipefail
dir=${1:?usage: scripts/pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f ca.pem ] && exit 0
umask 077
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=logcatch test CA"
ossl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 30 -subj "/CN=some other CA"
sign() { # sign NAME CN SAN
    ossl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
    ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 30 -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
}
sign server localhost "DNS:localhost,IP:127.0.0.1"
sign client logcatch "DNS:logcatch"
cat server.key server.pem > server-keystore.pem
chmod 644 ca.pem other-ca.pem server.pem client.pem
