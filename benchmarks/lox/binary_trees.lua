-- Allocation-heavy: build and check complete binary trees (same shape as binary_trees.lox).
local Tree = {}
Tree.__index = Tree

function Tree.new(item, depth)
  local self = setmetatable({}, Tree)
  self.item = item
  self.depth = depth
  if depth > 0 then
    local item2 = item + item
    depth = depth - 1
    self.left = Tree.new(item2 - 1, depth)
    self.right = Tree.new(item2, depth)
  else
    self.left = nil
    self.right = nil
  end
  return self
end

function Tree:check()
  if self.left == nil then return self.item end
  return self.item + self.left:check() - self.right:check()
end

local minDepth = 4
local maxDepth = 13
local stretchDepth = maxDepth + 1
local total = Tree.new(0, stretchDepth):check()
local longLived = Tree.new(0, maxDepth)

local iterations = 1
local d = 0
while d < maxDepth do
  iterations = iterations * 2
  d = d + 1
end

d = minDepth
while d < stretchDepth do
  local check = 0
  local i = 1
  while i <= iterations do
    check = check + Tree.new(i, d):check() + Tree.new(-i, d):check()
    i = i + 1
  end
  total = total + check
  iterations = math.floor(iterations / 4)  -- not //: LuaJIT runs this file too
  d = d + 2
end
total = total + longLived:check()
print(string.format("%g", total))  -- Lox prints numbers with %g
