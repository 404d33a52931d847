#!/bin/sh
# A development CA and one certificate for the compose stack (NATS clients and routes, Redis).
# Usage: deploy/gen-certs.sh [DIR]   (default ./certs; does nothing when DIR already has them)
# Production: use your own CA (cert-manager in Kubernetes) and keep the keys private.
set -eu
out="${1:-./certs}"
mkdir -p "$out"
if [ -s "$out/server.pem" ] && [ -s "$out/ca.pem" ]; then
    echo "certificates already in $out"
    exit 0
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=hmr development CA" \
    -keyout "$out/ca-key.pem" -out "$out/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=hmr" \
    -keyout "$out/server-key.pem" -out "$out/server.csr" 2>/dev/null
cat > "$out/server.ext" <<EXT
subjectAltName=DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:redis,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth
EXT
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" -CAcreateserial \
    -days 825 -extfile "$out/server.ext" -out "$out/server.pem" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl" "$out/ca-key.pem"
# The containers run as different users; these are development keys.
chmod 0644 "$out"/*.pem
echo "wrote $out/ca.pem, $out/server.pem, $out/server-key.pem"
