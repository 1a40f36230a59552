-- wrk script: POST about LEADS_PER_THREAD distinct leads per wrk thread, then stop; done()
-- prints ACCEPTED=<202s counted> (a few more may land: answers in flight when a thread stops).
-- Phones are PHONE_PREFIX (one digit, 6-9) + thread id + an 8-digit counter, so runs with
-- different prefixes never look like duplicates. The key comes from LEADBUS_KEY.
local limit = tonumber(os.getenv("LEADS_PER_THREAD") or "1000")
local prefix = os.getenv("PHONE_PREFIX") or "9"
local thread_id = 0
local threads = {}
counter, accepted = 0, 0

function setup(thread)
    thread:set("id", thread_id)
    thread_id = thread_id + 1
    table.insert(threads, thread)
end

function init(args)
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["X-API-Key"] = os.getenv("LEADBUS_KEY")
end

function request()
    counter = counter + 1
    if counter > limit then
        -- connections still open after the last lead ask for something that creates nothing
        return wrk.format("GET", "/healthz")
    end
    local body = string.format('{"source":"bench","name":"Bench Lead %d","phone":"%s%d%08d"}',
        counter, prefix, id, counter)
    return wrk.format("POST", "/leads", nil, body)
end

function response(status, headers, body)
    if status == 202 then
        accepted = accepted + 1
    end
    -- a /healthz answer means this thread's leads are all sent
    if accepted >= limit or status == 200 then wrk.thread:stop() end
end

function done(summary, latency, requests)
    local total = 0
    for _, t in ipairs(threads) do total = total + t:get("accepted") end
    io.write(string.format("ACCEPTED=%d\n", total))
    io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, summary.errors.status))
end
