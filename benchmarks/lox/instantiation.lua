-- Creating instances with an initializer (same shape as instantiation.lox).
local Foo = {}
Foo.__index = Foo
function Foo.new(a, b)
  local self = setmetatable({}, Foo)
  self.a = a
  self.b = b
  return self
end
local sum = 0
for i = 0, 999999 do
  local f = Foo.new(i, 1)
  sum = sum + f.b
  f = Foo.new(i, 2)
  sum = sum + f.b
end
print(string.format("%g", sum))  -- Lox prints numbers with %g
