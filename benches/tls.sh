#!/usr/bin/env bash
# TLS throughput through Python's ssl module, printed (issue 19: what leaving out OpenSSL's
# VAES/AVX-512 AES-GCM code costs): TLS 1.2 between two SSLObjects over memory BIOs in one
# process, 16 KB records encrypted by one side and decrypted by the other, best of 3 runs of
# 256 MB, for AES-256-GCM, AES-128-GCM and ChaCha20-Poly1305. The key and certificate (P-256) are
# made by the host's openssl.
#
# Usage: benches/tls.sh PYTHON...   (e.g. two releases' bin/python3.11-x86_64 side by side)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PYTHON..." >&2; exit 2; }
tmp=$(mktemp -d /tmp/spy-tls-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
cat > "$tmp/tls.py" <<'PY'
import ssl, sys, time
cert, key = sys.argv[1:3]
def connected(cipher):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    for ctx in (server, client):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
    bio = [ssl.MemoryBIO() for _ in range(4)]
    c = client.wrap_bio(bio[0], bio[1])
    s = server.wrap_bio(bio[2], bio[3], server_side=True)
    done = [False, False]
    while not all(done):
        for i, side in enumerate((c, s)):
            if not done[i]:
                try:
                    side.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            if bio[1].pending:
                bio[2].write(bio[1].read())
            if bio[3].pending:
                bio[0].write(bio[3].read())
    return c, s, bio
def mb_per_s(cipher, mb=256):
    c, s, bio = connected(cipher)
    chunk = b"x" * 16384
    t = time.perf_counter()
    for _ in range(mb * 64):
        c.write(chunk)
        bio[2].write(bio[1].read())
        s.read(16384)
    return mb / (time.perf_counter() - t)
for cipher in ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
    print(f"  {cipher:32s} {max(mb_per_s(cipher) for _ in range(3)):6.0f} MB/s")
PY
for py in "$@"; do
  echo "$py"
  "$py" "$tmp/tls.py" "$tmp/cert.pem" "$tmp/key.pem"
done
