# A curl config (curl -K) that POSTs n distinct leads to url with API key `key`:
#   awk -v n=100 -v prefix=97000 -v url=http://127.0.0.1:3000/leads -v key=KEY -f lead_requests.awk
# Phone i is prefix (5 digits) + i as 4 digits + 4 (the sandbox completes numbers ending
# in 4), so n is at most 9,999 per prefix. Each transfer prints its HTTP status on a line.
# Used by the integration tests and the benchmarks.
BEGIN {
    for (i = 1; i <= n; i++) {
        printf "url = \"%s\"\nheader = \"Content-Type: application/json\"\n", url
        printf "header = \"X-API-Key: %s\"\n", key
        printf "data = \"{\\\"name\\\":\\\"Lead %d\\\",\\\"phone\\\":\\\"%s%04d4\\\"}\"\n", i, prefix, i
        printf "output = \"/dev/null\"\nwrite-out = \"%%{http_code}\\\\n\"\n"
        if (i < n) print "next"
    }
}
