-- Maps: string keys (17576 three-letter words, set and read 200 times), number keys (set,
-- read, half removed, iterated). Same work as map.lox.
local letters = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
                 "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"}
local words = {}
for _, a in ipairs(letters) do
  for _, b in ipairs(letters) do
    for _, c in ipairs(letters) do words[#words + 1] = a .. b .. c end
  end
end
local nwords = #words

local m = {}
local sum = 0
for round = 0, 199 do
  for i = 1, nwords do m[words[i]] = i - 1 + round end
  for i = 1, nwords do sum = sum + m[words[i]] end
end
local size = 0
for _ in pairs(m) do size = size + 1 end
print(string.format("%g", size))

local n = {}
local count = 3000000
for i = 0, count - 1 do n[i] = i end
for i = 0, count - 1 do sum = sum + n[i] end
for i = 0, count - 1, 2 do n[i] = nil end
for k, _ in pairs(n) do sum = sum + n[k] end
local present = 0
for i = 0, count - 1 do if n[i] ~= nil then present = present + 1 end end
print(string.format("%g", present))
print(string.format("%g", sum))  -- Lox prints numbers with %g
