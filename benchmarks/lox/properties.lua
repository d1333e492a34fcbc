-- Field reads and writes on instances (same shape as properties.lox).
local Foo = {}
Foo.__index = Foo
function Foo.new()
  local self = setmetatable({}, Foo)
  self.field0 = 1; self.field1 = 1; self.field2 = 1; self.field3 = 1; self.field4 = 1
  self.field5 = 1; self.field6 = 1; self.field7 = 1; self.field8 = 1; self.field9 = 1
  return self
end
function Foo:method0() return self.field0 end function Foo:method1() return self.field1 end
function Foo:method2() return self.field2 end function Foo:method3() return self.field3 end
function Foo:method4() return self.field4 end function Foo:method5() return self.field5 end
function Foo:method6() return self.field6 end function Foo:method7() return self.field7 end
function Foo:method8() return self.field8 end function Foo:method9() return self.field9 end

local foo = Foo.new()
local sum = 0
for _ = 0, 2499999 do
  sum = sum + foo:method0() + foo:method1() + foo:method2() + foo:method3() + foo:method4()
      + foo:method5() + foo:method6() + foo:method7() + foo:method8() + foo:method9()
  foo.field0 = foo.field1 + foo.field2 - foo.field3
end
print(string.format("%g", sum))  -- Lox prints numbers with %g
