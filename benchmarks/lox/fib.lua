-- Recursive calls: fib(35) = 9227465.
local function fib(n)
  if n < 2 then return n end
  return fib(n - 2) + fib(n - 1)
end
print(string.format("%g", fib(35)))  -- Lox prints numbers with %g
