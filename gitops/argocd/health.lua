-- Argo CD health of an mPanel object (every kind of mpanel.migrahosting.com): Healthy once Ready
-- is True for the current generation, Degraded while Stalled (a failure no retry changes),
-- Suspended for a suspended Subscription, Progressing otherwise, with Ready's message.
local hs = { status = "Progressing", message = "waiting for the operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local ready, stalled, suspended
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" then stalled = c end
  if c.type == "Suspended" then suspended = c end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
if obj.kind == "Subscription" and suspended ~= nil and suspended.status == "True" then
  hs.status = "Suspended"
  hs.message = suspended.message or suspended.reason
  return hs
end
if ready ~= nil then
  local current = ready.observedGeneration == nil or generation == nil or ready.observedGeneration == generation
  if ready.status == "True" and current then
    hs.status = "Healthy"
  elseif ready.status == "True" then
    hs.message = "the latest spec is not reconciled yet"
    return hs
  end
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
end
return hs
