-- String library (same shape as strings_lib.lox; 1-based indices, plain find).
local text = "the quick brown fox jumps over the lazy dog"
local total = 0
for i = 0, 999999 do
  local w = text:sub(5, 9)
  total = total + #w
  total = total + (text:find("fox", 1, true) - 1)
  total = total + (text:find("o", (i % 20) + 1, true) - 1)
  local line = string.format("%d:%s", i, w:upper())
  total = total + #line
  if text:sub((i % 43) + 1, (i % 43) + 1) == " " then total = total + 1 end
  total = total + text:byte((i % 43) + 1)
end
print(string.format("%g", total))  -- Lox prints numbers with %g
