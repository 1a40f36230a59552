#!/usr/bin/env bash
# Walks the Zoho rows of docs/api-conformance.md against a real
# `leadbus --target=sandbox`: for each row, a request the real API refuses
# (the sandbox must refuse it with Zoho's code) and the request zoho-sync
# sends (the sandbox must accept it). A row added to the table gets its pair
# here; `rows` counts them and the table's walked rows must match.
. "$(dirname "$0")/lib.sh"
cd "$T"
P=$(free_port)
start sb env PORT="$P" HTTP_BIND=127.0.0.1 DATA_DIR="$T/sb" API_KEYS=test-key-0123456789abcdef \
    SANDBOX_ZOHO_CUSTOM_FIELDS=Last_Call_Status "$LEADBUS" --target=sandbox
wait_for 10 "sandbox" curl -fsS "http://127.0.0.1:$P/healthz"
ZO="http://127.0.0.1:$P/sandbox/zoho"
CRM="$ZO/crm/v8"

rows=0
# answer ARGS...: "CODE BODY" of one request
answer() { curl -s -o "$T/r" -w '%{http_code}' "$@"; echo " $(cat "$T/r")"; }
# row NAME REFUSED-PATTERN ACCEPTED-PATTERN: the two answers of a row (in $no and $yes) match
row() {
    grep -q -- "$2" <<<"$no" || fail "$1: the sandbox did not refuse as Zoho does; got: $no"
    grep -q -- "$3" <<<"$yes" || fail "$1: the sandbox refused what Zoho accepts; got: $yes"
    rows=$((rows + 1))
    echo "row $rows ($1): refused and accepted as documented"
}

# --- token (zoho.md §1.2): errors come with HTTP 200 and an `error` key
no=$(answer -X POST "$ZO/oauth/v2/token" -d grant_type=authorization_code -d client_id=sandbox-client \
    -d client_secret=sandbox-secret -d refresh_token=sandbox-refresh)
yes=$(answer -X POST "$ZO/oauth/v2/token" -d grant_type=refresh_token -d client_id=sandbox-client \
    -d client_secret=sandbox-secret -d refresh_token=sandbox-refresh)
row "token" '^200 {"error":"unsupported_grant_type"}' '^200 {"access_token":"1000\.'
TOKEN=$(grep -o '"access_token":"[^"]*"' <<<"$yes" | cut -d'"' -f4)
H=(-H "Authorization: Zoho-oauthtoken $TOKEN" -H "Content-Type: application/json")

# --- auth header (zoho.md §1.3)
no=$(answer -H "Authorization: Bearer $TOKEN" -X POST "$CRM/Leads/upsert" -d '{"data":[{"Last_Name":"A"}]}')
yes=$(answer "${H[@]}" -X POST "$CRM/Leads/upsert" -d '{"data":[{"Last_Name":"A","Leadbus_Id":"ld_a"}]}')
row "Zoho-oauthtoken header" '^401 .*"code":"AUTHENTICATION_FAILURE"' '^200 .*"code":"SUCCESS"'
LEAD=$(grep -o '"id":"[0-9]*"' <<<"$yes" | head -1 | cut -d'"' -f4)

# --- upsert (zoho.md §2.1, §2.4): Last_Name is mandatory, unknown fields are refused, <= 100 records
no=$(answer "${H[@]}" -X POST "$CRM/Leads/upsert" -d '{"data":[{"First_Name":"B","Leadbus_Id":"ld_b"}]}')
yes=$(answer "${H[@]}" -X POST "$CRM/Leads/upsert" -d '{"data":[{"Last_Name":"B","First_Name":"B","Leadbus_Id":"ld_b"}]}')
row "upsert: Last_Name mandatory" '^400 .*"code":"MANDATORY_NOT_FOUND".*"api_name":"Last_Name"' '^200 .*"action":"insert"'
no=$(answer "${H[@]}" -X POST "$CRM/Leads/upsert" -d '{"data":[{"Last_Name":"C","Favourite_Colour":"red"}]}')
row "upsert: unknown field" '^400 .*"code":"INVALID_DATA".*"api_name":"Favourite_Colour"' '^200 '
big=$(awk 'BEGIN { printf "{\"data\":["; for (i = 0; i < 101; i++) printf "%s{\"Last_Name\":\"X%d\"}", (i ? "," : ""), i; printf "]}" }')
no=$(answer "${H[@]}" -X POST "$CRM/Leads/upsert" -d "$big")
row "upsert: at most 100 records" '^400 .*"code":"LIMIT_EXCEEDED"' '^200 '

# --- related records: Notes (zoho.md "Added 2026-12", get-related-records v5-v8)
no=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Notes")
yes=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Notes?fields=Note_Title,Note_Content&per_page=200&page=1")
row "related Notes: fields mandatory" '^400 .*"code":"REQUIRED_PARAM_MISSING".*"param_name":"fields"' '^204 $'
no=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Notes?fields=Note_Content&per_page=201")
row "related Notes: per_page at most 200" '^400 .*"code":"INVALID_DATA".*"param_name":"per_page"' '^204 $'
no=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Notes?fields=Note_Content,Colour")
row "related Notes: known fields only" '^400 .*"code":"INVALID_DATA".*"api_name":"Colour"' '^204 $'
no=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Calls?fields=Subject")
row "related lists: Calls is not one of Leads'" '^400 .*the relation name given seems to be invalid' '^204 $'

# --- create a note (zoho.md §4.1): Parent_Id and Note_Content are mandatory
PARENT='"Parent_Id":{"module":{"api_name":"Leads"},"id":"'$LEAD'"}'
no=$(answer "${H[@]}" -X POST "$CRM/Leads/$LEAD/Notes" -d '{"data":[{"Note_Title":"T","Note_Content":"c"}]}')
yes=$(answer "${H[@]}" -X POST "$CRM/Leads/$LEAD/Notes" -d '{"data":[{"Note_Title":"T","Note_Content":"first [m1]",'"$PARENT"'}]}')
row "Notes: Parent_Id mandatory" '^400 .*"code":"MANDATORY_NOT_FOUND".*"api_name":"Parent_Id"' '^201 .*"code":"SUCCESS"'
no=$(answer "${H[@]}" -X POST "$CRM/Leads/$LEAD/Notes" -d '{"data":[{"Note_Title":"T",'"$PARENT"'}]}')
row "Notes: Note_Content mandatory" '^400 .*"api_name":"Note_Content"' '^201 '
# ... and the related list now pages through them: 3 notes, 2 per page
for i in 2 3; do
    answer "${H[@]}" -X POST "$CRM/Leads/$LEAD/Notes" -d '{"data":[{"Note_Content":"n'$i' [m'$i']",'"$PARENT"'}]}' >/dev/null
done
p1=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Notes?fields=Note_Content&per_page=2&page=1")
p2=$(answer "${H[@]}" "$CRM/Leads/$LEAD/Notes?fields=Note_Content&per_page=2&page=2")
grep -q '^200 .*\[m1\].*\[m2\].*"more_records":true' <<<"$p1" || fail "page 1 of the notes: $p1"
grep -q '^200 .*\[m3\].*"more_records":false' <<<"$p2" || fail "page 2 of the notes: $p2"
grep -q 'Note_Title' <<<"$p1" && fail "fields=Note_Content answered other fields: $p1"

# --- log a call (zoho.md §4.2): Subject mandatory and <= 255, duration not zero, What_Id with $se_module
CALLREC='"Call_Type":"Outbound","Outbound_Call_Status":"Completed","Call_Start_Time":"2026-11-24T10:00:00+00:00","$se_module":"Leads","What_Id":{"id":"'$LEAD'"}'
no=$(answer "${H[@]}" -X POST "$CRM/Calls" -d "{\"data\":[{$CALLREC,\"Subject\":\"S\",\"Call_Duration\":\"00:00\"}]}")
yes=$(answer "${H[@]}" -X POST "$CRM/Calls" -d "{\"data\":[{$CALLREC,\"Subject\":\"Auto-call [c1]\",\"Call_Duration\":\"01:13\"}]}")
row "Calls: duration not zero" '^400 .*"code":"DEPENDENT_MISMATCH"' '^201 .*"code":"SUCCESS"'
long=$(printf 'S%.0s' $(seq 1 256))
no=$(answer "${H[@]}" -X POST "$CRM/Calls" -d "{\"data\":[{$CALLREC,\"Subject\":\"$long\",\"Call_Duration\":\"01:00\"}]}")
row "Calls: Subject at most 255" '^400 .*"api_name":"Subject".*"maximum_length":255' '^201 '
no=$(answer "${H[@]}" -X POST "$CRM/Calls" -d '{"data":[{"Subject":"S","Call_Type":"Outbound","Call_Start_Time":"2026-11-24T10:00:00+00:00","What_Id":{"id":"'$LEAD'"}}]}')
row "Calls: What_Id needs \$se_module" '^400 .*"api_name":"What_Id"' '^201 '

# --- COQL (Kaizen #80/#81, COQL overview): What_Id of Calls through 'What_Id->Leads.id'
coql() { answer "${H[@]}" -X POST "$CRM/coql" -d "{\"select_query\":\"$1\"}"; }
no=$(coql "select id, Subject from Calls where What_Id = '$LEAD'")
yes=$(coql "select id, Subject from Calls where 'What_Id->Leads.id' = '$LEAD' limit 200 offset 0")
row "COQL: What_Id names its module" '^400 .*"code":"INVALID_QUERY"' '^200 .*"Subject":"Auto-call \[c1\]".*"more_records":false'
no=$(coql "select id, Subject from Calls where 'What_Id->Leads.id' = '$LEAD' limit 2001")
row "COQL: limit at most 2000" '^400 .*"code":"LIMIT_EXCEEDED"' '^200 '
no=$(coql "select id, Subject from Calls")
row "COQL: a where clause" '^400 .*"code":"SYNTAX_ERROR"' '^200 '
no=$(coql "select id, Colour from Calls where 'What_Id->Leads.id' = '$LEAD'")
row "COQL: known columns" '^400 .*"code":"INVALID_QUERY".*"column_name":"Colour"' '^200 '
no=$(answer "${H[@]}" -X POST "$CRM/coql" -d '{"query":"select id from Calls"}')
row "COQL: select_query mandatory" '^400 .*"code":"REQUIRED_PARAM_MISSING"' '^200 '
none=$(coql "select id, Subject from Calls where 'What_Id->Leads.id' = '1234567890123456789'")
[ "$none" = "204 " ] || fail "COQL with no match should answer 204: $none"

# --- update (zoho.md §5.1): id mandatory, fields must exist in the org
no=$(answer "${H[@]}" -X PUT "$CRM/Leads" -d '{"data":[{"Last_Call_Status":"busy"}]}')
yes=$(answer "${H[@]}" -X PUT "$CRM/Leads" -d '{"data":[{"id":"'$LEAD'","Last_Call_Status":"busy"}]}')
row "PUT Leads: id mandatory" '^400 .*"code":"MANDATORY_NOT_FOUND".*"api_name":"id"' '^200 .*"code":"SUCCESS"'
no=$(answer "${H[@]}" -X PUT "$CRM/Leads" -d '{"data":[{"id":"'$LEAD'","No_Such_Field":"busy"}]}')
row "PUT Leads: unknown field" '^400 .*"code":"INVALID_DATA".*"api_name":"No_Such_Field"' '^200 '

# The table lists as many walked Zoho rows as were walked here.
doc="$(dirname "$0")/../../docs/api-conformance.md"
walked=$(sed -n '/^## Zoho/,/^## Exotel/p' "$doc" | grep -c 'conformance_zoho' || true)
echo "conformance (Zoho): $rows rows walked; the table cites this test in $walked rows"
[ "$walked" -ge 8 ] || fail "docs/api-conformance.md cites conformance_zoho.sh in only $walked Zoho rows"
