-- Method calls through a class hierarchy (same shape as method_call.lox).
local Toggle = {}
Toggle.__index = Toggle
function Toggle.new(startState)
  return setmetatable({state = startState}, Toggle)
end
function Toggle:value() return self.state end
function Toggle:activate()
  self.state = not self.state
  return self
end

local NthToggle = setmetatable({}, {__index = Toggle})
NthToggle.__index = NthToggle
function NthToggle.new(startState, maxCounter)
  local self = Toggle.new(startState)
  setmetatable(self, NthToggle)
  self.countMax = maxCounter
  self.count = 0
  return self
end
function NthToggle:activate()
  self.count = self.count + 1
  if self.count >= self.countMax then
    Toggle.activate(self)
    self.count = 0
  end
  return self
end

local n = 1000000
local hits = 0
local val = true
local toggle = Toggle.new(val)
for _ = 1, n do
  val = toggle:activate():value(); if val then hits = hits + 1 end
  val = toggle:activate():value(); if val then hits = hits + 1 end
  val = toggle:activate():value(); if val then hits = hits + 1 end
  val = toggle:activate():value(); if val then hits = hits + 1 end
  val = toggle:activate():value(); if val then hits = hits + 1 end
end

local ntoggle = NthToggle.new(val, 3)
for _ = 1, n do
  val = ntoggle:activate():value(); if val then hits = hits + 1 end
  val = ntoggle:activate():value(); if val then hits = hits + 1 end
  val = ntoggle:activate():value(); if val then hits = hits + 1 end
  val = ntoggle:activate():value(); if val then hits = hits + 1 end
  val = ntoggle:activate():value(); if val then hits = hits + 1 end
end
print(string.format("%g", hits))  -- Lox prints numbers with %g
