-- wrk script: POST /leads with a distinct lead per request.
-- The key comes from the environment (LEADBUS_KEY), never from this file.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
    thread:set("id", thread_id)
    thread_id = thread_id + 1
    table.insert(threads, thread)
end

function init(args)
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["X-API-Key"] = os.getenv("LEADBUS_KEY")
end

function request()
    counter = counter + 1
    local n = id * 100000000 + counter
    local body = string.format(
        '{"source":"bench","name":"Bench Lead %d","phone":"98%08d","email":"lead%d@example.com"}',
        n, n % 100000000, n)
    return wrk.format(nil, "/leads", nil, body)
end

local non202 = 0
function response(status, headers, body)
    if status ~= 202 then non202 = non202 + 1 end
end

function done(summary, latency, requests)
    io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status))
end
