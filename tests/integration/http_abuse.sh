#!/usr/bin/env bash
# Malformed and hostile HTTP against a running leadbus: huge headers, bodies
# over the cap (plain and chunked), invalid UTF-8, JSON nested 30,000 deep,
# truncated bodies, junk request lines, and slowloris crowds. Each gets a 4xx
# (or a closed connection), the process stays up, and it keeps answering
# others: at once beside a crowd smaller than the thread pool, within about
# two request timeouts (10 s each) behind one twice its size.
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
P=$(free_port)
U="http://127.0.0.1:$P"
THREADS=16
start leadbus env PORT=$P HTTP_BIND=127.0.0.1 HTTP_THREADS=$THREADS DATA_DIR="$T/data" API_KEYS=$KEY \
    "$LEADBUS" --target=all
LB=$LAST_PID
wait_for 15 leadbus curl -fsS "$U/readyz"
code() { curl -s -o "$T/out" -w '%{http_code}' --max-time 20 "$@" || true; }
post() { code -X POST "$U/leads" -H "Content-Type: application/json" -H "X-API-Key: $KEY" "$@"; }
expect() { # WHAT WANT GOT
    [ "$3" = "$2" ] || fail "$1: expected $2, got $3 $(head -c 300 "$T/out")"
    echo "ok: $1 -> $3"
}

expect "a 100 KB header" 400 "$(code -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' a)" "$U/healthz")"
hdrs=(); for i in $(seq 1 400); do hdrs+=(-H "X-H$i: $(head -c 200 /dev/zero | tr '\0' b)"); done
c=$(code "${hdrs[@]}" "$U/healthz"); [ "${c:0:1}" = 4 ] || fail "400 headers of 200 bytes: $c"; echo "ok: 400 headers -> $c"
head -c 200000 /dev/zero | tr '\0' a >"$T/big"
expect "a 200 KB body" 413 "$(post --data-binary @"$T/big")"
expect "a 200 KB chunked body" 413 "$(post -H 'Transfer-Encoding: chunked' --data-binary @"$T/big")"
printf '{"name":"Bad \xff\xfe UTF","phone":"9876543210"}' >"$T/utf8"
expect "invalid UTF-8" 422 "$(post --data-binary @"$T/utf8")"
grep -q '"name":"must be valid UTF-8"' "$T/out" || fail "the error should name the field: $(cat "$T/out")"
{ printf '{"name":"Deep","email":"d@example.com","extra":'; head -c 30000 /dev/zero | tr '\0' '['
  head -c 30000 /dev/zero | tr '\0' ']'; printf '}'; } >"$T/deep"
expect "JSON nested 30,000 deep" 400 "$(post --data-binary @"$T/deep")"
expect "a body that is not JSON" 400 "$(post --data-binary $'\x00\x01\x02garbage')"
# a body shorter than its Content-Length, then the connection closes
exec 3<>"/dev/tcp/127.0.0.1/$P"
printf 'POST /leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-Key: %s\r\nContent-Length: 500\r\n\r\n{"name":' "$KEY" >&3
exec 3>&-
# junk instead of a request line
exec 3<>"/dev/tcp/127.0.0.1/$P"
printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not HTTP at all\r\n\r\n' >&3
timeout 15 cat <&3 >/dev/null || true
exec 3>&-
expect "still answering after the junk" 200 "$(code "$U/healthz")"

# slowloris: civetweb gives each connection a thread until the 10 s request timeout. A crowd
# just under the pool leaves others served at once; twice the pool delays them by about two
# timeouts (slots free as the timeouts fire), and never stops the server.
slowloris() { # N: open N half-sent requests; their fds in $slow
    slow=()
    for i in $(seq 1 "$1"); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$P"
        printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&$fd
        slow+=("$fd")
    done
}
release() { for fd in "${slow[@]}"; do exec {fd}>&-; done; }
for crowd in $((THREADS - 2)) $((2 * THREADS)); do
    slowloris $crowd
    t0=$(date +%s%N)
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 40 "$U/healthz" || true)
    waited=$((($(date +%s%N) - t0) / 1000000))
    release
    expect "a request behind $crowd slow connections ($THREADS threads)" 200 "$c"
    echo "   answered after $waited ms"
    limit=$([ $crowd -lt $THREADS ] && echo 2000 || echo 32000)
    [ $waited -lt $limit ] || fail "$crowd slowloris connections held others for $waited ms (bound $limit)"
done

# and business as usual
expect "a valid lead afterwards" 202 "$(post -d '{"name":"After Abuse","phone":"9876543210"}')"
kill -0 "$LB" || fail "leadbus died"
kill -TERM "$LB"; wait_pid 15 "$LB" || fail "leadbus did not stop cleanly"
if grep -q "AddressSanitizer\|runtime error" "$T/leadbus.log"; then fail "sanitizer report in the log"; fi
