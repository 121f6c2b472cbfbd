-- wrk script for bench/run.py: prints one machine-readable line when the run is done.
--
--   wrk ... -s bench/report.lua URL -- [expect=STATUS]
--
-- Without arguments no response() hook is installed, so wrk does not hand each response to Lua
-- (which would slow the client down). With `expect=404` every response is checked and the
-- ones with another status are counted as "unexpected" (wrk's own status count, errors.status,
-- counts every status >= 400, so in a 404 cell it counts the expected answers too).

local threads = {}
expect = nil
unexpected = 0

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   for _, arg in ipairs(args) do
      local value = string.match(arg, "^expect=(%d+)$")
      if value then
         expect = tonumber(value)
      end
   end
   if expect then
      response = function(status, headers, body)
         if status ~= expect then
            unexpected = unexpected + 1
         end
      end
   end
end

function done(summary, latency, requests)
   local checked, counted = 0, 0
   for _, thread in ipairs(threads) do
      local n = thread:get("unexpected")
      if thread:get("expect") then
         checked = 1
         counted = counted + (n or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\": %.0f, \"bytes\": %.0f, \"duration_us\": %.0f, " ..
      "\"latency_p50_us\": %.0f, \"latency_p99_us\": %.0f, \"latency_max_us\": %.0f, " ..
      "\"errors\": {\"connect\": %.0f, \"read\": %.0f, \"write\": %.0f, \"timeout\": %.0f, " ..
      "\"status\": %.0f}, \"checked_status\": %s, \"unexpected_status\": %.0f}\n",
      summary.requests, summary.bytes, summary.duration,
      latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status,
      checked == 1 and "true" or "false", counted))
end
