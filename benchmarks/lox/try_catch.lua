-- try/catch: a protected call every iteration (same shape as try_catch.lox); one in ten
-- raises a value (true: LuaJIT would add a position to a number), one in a hundred
-- fails with a runtime error (arithmetic on nil). Runs on Lua 5.4 and LuaJIT.
local function check(i, nothing)
  if i % 100 == 0 then return nothing + 1 end
  if i % 10 == 0 then error(true) end
  return i
end
local sum, thrown, failed = 0, 0, 0
for i = 1, 2000000 do
  local ok, r = pcall(check, i, nil)
  if ok then
    sum = sum + r
  elseif r == true then
    thrown = thrown + 1
  else
    failed = failed + 1
  end
end
print(string.format("%g", sum))  -- Lox prints numbers with %g
print(string.format("%g", thrown))
print(string.format("%g", failed))
