-- wrk script: GET $TARGET_PATH (default /me) with a bearer token, cycling
-- through the tokens in $TOKENS (one a line), each thread starting at its own
-- offset. Both runs of the load test use it, so wrk does the same work for
-- /healthz (which ignores the header) as for /me.
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local path = os.getenv("TARGET_PATH") or "/me"
local i = math.random(#tokens)

request = function()
  i = i % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
