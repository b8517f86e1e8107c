-- wrk script: signed webhook deliveries, each with its own X-GitHub-Delivery.
--
--   wrk -t1 -c32 -d10s --latency -s bench/deliveries.lua http://127.0.0.1:PORT/api/github/webhooks \
--       -- BODY_FILE SIGNATURE [RUN_ID] [EVENT] [count-status]
--
-- BODY_FILE holds the raw JSON body, SIGNATURE its "sha256=<hex>" (the signature covers only
-- the body, so one body serves every request). RUN_ID (8 hex digits) keeps delivery ids unique
-- across wrk runs. With "count-status", response() counts every non-2xx answer; without it,
-- wrk only counts answers >= 400 (summary.errors.status). Counting in Lua makes wrk hand every
-- response to Lua; with wrk on its own core that made no measurable difference here.
--
-- done() prints one line: BENCH_RESULT {json}. Latencies are in milliseconds.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

local body, path
local headers = {}
local run_id = "00000000"
local counter = 0
non2xx = 0 -- globals: done() reads them from each thread with thread:get()
counting_status = false

local function count_response(status, _headers, _body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function init(args)
   local file = assert(io.open(assert(args[1], "BODY_FILE missing"), "rb"))
   body = file:read("*a")
   file:close()
   run_id = args[3] or run_id
   headers["Content-Type"] = "application/json"
   headers["User-Agent"] = "GitHub-Hookshot/bench"
   headers["X-GitHub-Event"] = args[4] or "issues"
   headers["X-Hub-Signature-256"] = assert(args[2], "SIGNATURE missing")
   path = wrk.path
   if args[5] == "count-status" then
      response = count_response -- wrk checks for a global response() after init()
      counting_status = true
   end
end

function request()
   counter = counter + 1
   headers["X-GitHub-Delivery"] = string.format(
      "%s-%04x-4000-8000-%012x", run_id, thread_id or 0, counter
   )
   return wrk.format("POST", path, headers, body)
end

function done(summary, latency, _requests)
   local counted = 0
   local counting = false
   for _, thread in ipairs(threads) do
      counted = counted + (thread:get("non2xx") or 0)
      counting = counting or thread:get("counting_status") == true
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"non2xx":%s,"status_errors":%d,"connect_errors":%d,"read_errors":%d,' ..
      '"write_errors":%d,"timeouts":%d,"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,' ..
      '"max":%.3f,"mean":%.3f}}\n',
      summary.requests, summary.duration, summary.bytes,
      counting and tostring(counted) or "null", e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000
   ))
end
