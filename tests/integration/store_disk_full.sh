#!/usr/bin/env bash
# Issue 14, case 6 (disk full): ingest's DATA_DIR on a 2 MiB tmpfs, filled up. While the store
# cannot commit, POST /leads answers 503 (never a 202 that is not on disk), /readyz names the
# store, an ERROR line and leadbus_store_commit_failures_total say why; once space returns the
# store is ready again by itself (a probe commit each second) and takes leads. Every lead that
# got a 202 is in the store afterwards. Needs root to mount the tmpfs (else skipped, 77).
. "$(dirname "$0")/lib.sh"
cd "$T"
KEY=test-key-0123456789abcdef
mkdir -p "$T/full"
mount -t tmpfs -o size=2m,mode=0700 tmpfs "$T/full" 2>/dev/null || {
    echo "cannot mount a tmpfs here: skipped"
    exit 77
}
# The tmpfs goes before lib.sh's cleanup removes $T (its processes first, or it stays busy).
unmount_then_cleanup() {
    local rc=$?
    kill_own 9 "${PIDS[@]:-}"
    wait 2>/dev/null || true
    umount -l "$T/full" 2>/dev/null || true
    set +e
    (exit $rc)
    cleanup
}
trap unmount_then_cleanup EXIT

P=$(free_port); U="http://127.0.0.1:$P"
start ingest env PORT=$P HTTP_BIND=127.0.0.1 API_KEYS=$KEY DATA_DIR="$T/full/data" \
    BUS_INGEST_PUB="ipc://$T/i.ipc" BUS_INGEST_REPLAY="ipc://$T/ir.ipc" "$LEADBUS" --target=ingest
ING=$LAST_PID
wait_for 10 ingest curl -fsS "$U/readyz"

accepted=0
post() { # sets CODE to the HTTP status; counts 202s
    CODE=$(curl -s -o "$T/post" -w '%{http_code}' -X POST "$U/leads" -H "Content-Type: application/json" \
        -H "X-API-Key: $KEY" -d "{\"name\":\"$1\",\"email\":\"a@example.com\",\"notes\":\"$(printf '%0400d' 0)\"}")
    if [ "$CODE" = 202 ]; then accepted=$((accepted + 1)); fi
}
metric() { curl -s "$U/metrics" | awk -v m="$1" 'index($0, m) == 1 {print $NF}'; }
for i in $(seq 1 20); do post "Lead $i"; [ "$CODE" = 202 ] || fail "lead $i before the disk filled"; done

dd if=/dev/zero of="$T/full/filler" bs=4096 2>/dev/null || true # until ENOSPC
echo "tmpfs: $(df -k "$T/full" | tail -1)"
# The WAL may still have room for a few commits; each is durable. Then commits fail.
refused=0
for i in $(seq 1 300); do
    post "Full $i"
    if [ "$CODE" = 503 ]; then refused=1; break; fi
    [ "$CODE" = 202 ] || fail "POST on a full disk answered $CODE: $(cat "$T/post")"
done
[ $refused -eq 1 ] || fail "300 leads accepted on a full disk"
grep -q '"code":"unavailable"' "$T/post" || fail "503 without the JSON error: $(cat "$T/post")"
not_ready() { curl -s "$U/readyz" | grep -c '"status":"not ready".*"store ingest"' >/dev/null; }
wait_for 5 "/readyz to name the store" not_ready
grep -q "ERROR.*Store cannot commit.*$T/full/data/ingest.db" "$T/ingest.log" || fail "no ERROR line naming the file"
[ "$(metric 'leadbus_store_writable{store="ingest"}')" = 0 ] || fail "writable gauge"
fails=$(metric 'leadbus_store_commit_failures_total{store="ingest"}')
[ "${fails:-0}" -ge 1 ] || fail "commit failures not counted"
# Still not ready a while later, while nothing posts: the probe keeps failing.
sleep_until=$((SECONDS + 2))
while [ $SECONDS -lt $sleep_until ]; do not_ready || fail "ready again with the disk still full"; sleep 0.2; done
echo "full disk: $accepted leads accepted, then 503; $(curl -s "$U/readyz"); $fails commit failures"

rm "$T/full/filler"
ready() { curl -fsS "$U/readyz" | grep -c '"status":"ready"' >/dev/null; }
wait_for 5 "/readyz ready again once space returned" ready
grep -q "Store commits again" "$T/ingest.log" || fail "no line saying the store recovered"
post "After Space"
[ "$CODE" = 202 ] || fail "no lead accepted after space returned: $(cat "$T/post")"
kill -TERM "$ING"; wait_pid 10 "$ING"
stored=$(sqlite3 "$T/full/data/ingest.db" "SELECT count(*) FROM leads")
[ "$stored" -eq "$accepted" ] || fail "$accepted leads got 202 but $stored are stored"
echo "store_disk_full: ok ($stored leads stored = 202s answered)"
