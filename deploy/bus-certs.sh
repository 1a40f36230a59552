#!/usr/bin/env bash
# bus-certs.sh DIR [NAME...]: a development CA and one key + certificate per bus peer, for
# BUS_TLS_CA / BUS_TLS_CERT / BUS_TLS_KEY (README, "The bus"). Each certificate's subjectAltName
# (DNS) and CN are the name: for a publisher, its stream name (ingest, zoho-sync, ingest-0, ...),
# which subscribers verify; for a subscriber-only target (stats), any CA-issued name will do.
# Default names: ingest zoho-sync call-scheduler dialer stats, plus the ones given.
# Writes DIR/ca.crt, DIR/ca.key and DIR/NAME.crt, DIR/NAME.key, all 0600. An existing CA in DIR
# is reused, so more names can be added later. Needs openssl (Debian's). Development only: in
# production keep the CA key off the cluster (or let cert-manager hold it).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME...]" >&2; exit 2; }
dir=$1
shift
days=${BUS_CERT_DAYS:-825}
umask 077
mkdir -p "$dir"
names=(ingest zoho-sync call-scheduler dialer stats "$@")
if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
        -subj "/CN=leadbus bus development CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
fi
for name in "${names[@]}"; do
    case $name in
    *[!A-Za-z0-9.-]* | "") echo "$0: bad name '$name' (letters, digits, '.', '-')" >&2; exit 2 ;;
    esac
    [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ] && continue
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
    ext="$dir/$name.ext"
    printf '%s\n' "subjectAltName=DNS:$name" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth,clientAuth" >"$ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days "$days" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$dir/$name.csr" "$ext"
done
rm -f "$dir/ca.srl"
chmod 0600 "$dir"/*.crt "$dir"/*.key
echo "bus certificates in $dir: ca.crt, ${names[*]/%/.crt}"
