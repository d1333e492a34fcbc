// global_table.h: the program-wide table of global variable names.
//
// Globals are resolved to slots at compile time: the compiler asks the table for a
// name's slot and emits the slot number, so the VM reads and writes globals by index
// (a vector of values) instead of hashing names. One table lives as long as a VM
// session and is passed to every compile call of that session (a REPL compiles many
// scripts against the same table), so a name keeps its slot forever.
//
// A slot exists as soon as any code mentions the name; the VM keeps a parallel vector
// of values where a slot is "unset" until OP_DEFINE_GLOBAL (or the host) sets it, and
// reports "Undefined variable 'NAME'." using `name(slot)` when code reads or assigns
// an unset slot. Natives (clock, ...) are defined by the host through `slotFor`.
//
// Invariant: names_[slotFor(n)] == n, and slots are 0..size()-1 in order of first use.
// Not thread-safe: compile calls of one session are serialised by the host.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace spindle::lang {

// A module's own globals are named "name" + kModuleNameMark + its number (compiler.h
// ModuleOptions); displayName gives the name as the script wrote it.
inline constexpr char kModuleNameMark = '\x01';
inline std::string_view displayName(std::string_view name) {
  return name.substr(0, name.find(kModuleNameMark));
}

class GlobalTable {
 public:
  // The slot of `name`, adding it if it is new.
  std::uint32_t slotFor(std::string_view name);
  // The slot of `name`, or -1 if no code has mentioned it.
  std::int64_t find(std::string_view name) const;
  const std::string& name(std::uint32_t slot) const { return names_[slot]; }
  std::size_t size() const { return names_.size(); }

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::uint32_t> slots_;
};

}  // namespace spindle::lang
