-- api-load.lua: a wrk script for the frontend under many concurrent clients.
-- Half the requests submit a one-task job with a unique name (a simulated
-- worker runs it for a second), half list the newest 50 jobs. Run against
-- `rswarm up --runtime sim ... --api-token T`:
--   RSWARM_API_TOKEN=T wrk -t2 -c200 -d60s --latency -s scripts/api-load.lua http://127.0.0.1:5001
-- and compare the jobs stored with the 201 submissions counted in done().
local token = os.getenv("RSWARM_API_TOKEN") or ""
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  submitted = 0
  counter = 0
  prefix = string.format("load%d-%d", os.time(), tid)
end

function request()
  counter = counter + 1
  local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if counter % 2 == 0 then
    return wrk.format("GET", "/api/v1/jobs?limit=50", headers)
  end
  local name = string.format("%s-%d", prefix, counter)
  local body = string.format([[{"job_name":"%s","session":"api-load","job_info":{"network":{"name":"","driver":"overlay","subnet":""},"tasks":{"%s_t1":{"container_name":"%s_t1","node":"","image":"rswarm/busybox:latest","detach":true,"command":"sleep 1","req_cores":1,"cpuset_cpus":"","mem_limit":"8m","ports":{},"volumes":{},"environment":{},"status":"Ready","deadline":0}}},"status":"Ready","start_time":0,"end_time":0}]], name, name, name)
  return wrk.format("POST", "/api/v1/jobs", headers, body)
end

function response(status, headers, body)
  if status == 201 then -- only a submission answers 201
    submitted = submitted + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("submitted") or 0)
  end
  io.write(string.format("submissions accepted (201): %d\n", total))
  io.write(string.format("p50 %.1f ms, p99 %.1f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
