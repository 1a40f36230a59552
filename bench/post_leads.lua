-- wrk script: POST exactly LEADS_PER_THREAD distinct leads per wrk thread, then stop.
-- Phones are PHONE_PREFIX (one digit, 6-9) + thread id + an 8-digit counter, so runs with
-- different prefixes never look like duplicates. The key comes from LEADBUS_KEY.
local limit = tonumber(os.getenv("LEADS_PER_THREAD") or "1000")
local prefix = os.getenv("PHONE_PREFIX") or "9"
local thread_id = 0
local counter, accepted, other = 0, 0, 0

function setup(thread)
    thread:set("id", thread_id)
    thread_id = thread_id + 1
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
        if accepted >= limit then wrk.thread:stop() end
    elseif status ~= 200 then
        other = other + 1
    end
end

function done(summary, latency, requests)
    io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, summary.errors.status))
end
