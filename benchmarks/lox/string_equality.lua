-- String equality (same shape as string_equality.lox).
local a1 = "abc"; local a2 = "abd"; local a3 = "some longer string that is quite long"
local b1 = "ab" .. "c"; local b2 = "ab" .. "d"
local count = 0
for i = 0, 9999999 do
  if a1 == b1 then count = count + 1 end
  if a2 == b2 then count = count + 1 end
  if a1 == a2 then count = count + 1 end
  if a3 == a1 then count = count + 1 end
  if a3 == "some longer string that is quite long" then count = count + 1 end
  if i == "x" then count = count + 1 end
  if a1 ~= b2 then count = count + 1 end
end
print(string.format("%g", count))  -- Lox prints numbers with %g
