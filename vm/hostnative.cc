// hostnative.cc: the call of a host-defined native or native method (Vm::defineNative,
// ClassBuilder), the script -> C++ direction of the embedding API.
//
// Design. Each native is an ObjNative whose fn is Vm::callNative, a plain function, and
// whose host pointer is a NativeRecord: the host's function in one of four forms (a
// std::function Native or Method, a plain function with or without the host's data, or a
// method<T> of a captureless lambda, called with the instance's state), its name (for
// errors) and whether it blocks. The VM owns the record (VM::newHostNative's data) until
// ~VM, after every fiber stopped. A call converts the arguments in place, on the C++
// stack (up to kInlineArgs; more take a vector): numbers, bools and nil are copies, a
// string a copy of its bytes, and an object is a borrowed Value (Value::borrowed_) that
// reads the fiber's stack slot's value and takes no handle: the arguments stay on the
// calling fiber's stack, a root, for the whole call, and Args gives the native only
// const access, so a borrowed Value leaves the call only as a copy, which takes a handle
// (Value's copy constructor). So a native call whose arguments and result are no
// strings allocates nothing and takes no lock.
//
// Invariants.
//   - A borrowed Value lives in this file's argument buffer and dies with the call.
//   - An exception escaping the host's function (TypeError, bad_alloc, any other) becomes
//     the calling script's runtime error: it never crosses the interpreter's frames.
#include <bit>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vm/blocking.h"
#include "vm/spindle.h"
#include "vm/vm.h"

namespace spindle {

struct Vm::NativeRecord {
  enum class Form : std::uint8_t { Native, Plain, PlainData, Method, MethodState };
  Vm* host;
  std::string name;  // "hostAdd", "Counter.add"
  Form form;
  bool blocking = false;
  Native native = nullptr;                                          // Form::Native
  Result (*plain)(Vm&, Args) = nullptr;                     // Form::Plain
  NativeFunction plainData = nullptr;                       // Form::PlainData
  void* data = nullptr;                                     //   its host data
  spindle::Method method = nullptr;                                 // Form::Method
  Result (*state)(Vm&, const Value&, void*, Args) = nullptr;  // Form::MethodState
  const void* tag = nullptr;                                //   the state's type
  std::string uninitialised = {};                              //   its error without state

  // The host's function, args[0] being `this` for the method forms.
  Result invoke(Args args) const {
    switch (form) {
      case Form::Native: return native(*host, args);
      case Form::Plain: return plain(*host, args);
      case Form::PlainData: return plainData(*host, args, data);
      case Form::Method: return method(*host, args[0], args.subspan(1));
      case Form::MethodState: {
        void* st = host->hostDataRaw(args[0], tag);
        if (st == nullptr) return Result::failure(uninitialised);
        return state(*host, args[0], st, args.subspan(1));
      }
    }
    return Result::failure(fmt::format("{}() failed.", name));
  }
};

Value Vm::borrow(vm::Value x) {
  if (!x.isObj() || vm::isKind(x, vm::ObjKind::String)) return fromInternal(x);
  Value out;
  out.kind_ = Value::Kind::Object;
  out.borrowed_ = this;
  out.number_ = std::bit_cast<double>(x.bits());
  return out;
}

namespace {
constexpr int kInlineArgs = 8;

// The host Values of a call's arguments: in place up to kInlineArgs, else in a vector.
class ArgBuffer {
 public:
  ArgBuffer(Vm& host, int argc, const vm::Value* args, Value (Vm::*borrow)(vm::Value)) : argc_(argc) {
    if (argc <= kInlineArgs) {
      try {
        for (; built_ < argc; ++built_) {
          const vm::Value x = args[built_];
          if (x.isNumber()) {
            new (&items()[built_]) Value(Value::number(x.asNumber()));
          } else {
            new (&items()[built_]) Value((host.*borrow)(x));
          }
        }
      } catch (...) {
        destroyInline();
        throw;
      }
    } else {
      more_.reserve(static_cast<std::size_t>(argc));
      for (int i = 0; i < argc; ++i) more_.push_back((host.*borrow)(args[i]));
    }
  }
  ~ArgBuffer() { destroyInline(); }
  ArgBuffer(const ArgBuffer&) = delete;
  ArgBuffer& operator=(const ArgBuffer&) = delete;
  Args args() const {
    return argc_ <= kInlineArgs ? Args(items(), static_cast<std::size_t>(argc_)) : Args(more_);
  }

 private:
  Value* items() const { return std::launder(reinterpret_cast<Value*>(const_cast<unsigned char*>(storage_))); }
  void destroyInline() {
    for (int i = 0; i < built_; ++i) items()[i].~Value();
  }
  int argc_;
  int built_ = 0;  // inline Values constructed
  alignas(Value) unsigned char storage_[kInlineArgs * sizeof(Value)];
  std::vector<Value> more_;
};
}  // namespace

bool Vm::callNative(vm::VM& v, const void* record, int argc, vm::Value* args, vm::Value* result) {
  const NativeRecord& rec = *static_cast<const NativeRecord*>(record);
  Vm& host = *rec.host;
  try {
    const ArgBuffer buffer(host, argc, args, &Vm::borrow);
    const Result r = rec.blocking ? vm::blockingCall([&] { return rec.invoke(buffer.args()); })
                                  : rec.invoke(buffer.args());
    if (!r.ok()) return v.raise(r.error().message);
    const Value& out = r.value();
    // A number needs no conversion; a string is interned (it may throw bad_alloc).
    *result = out.isNumber() ? vm::Value::number(out.asNumber()) : host.toInternalValue(out);
    return true;
  } catch (const TypeError& e) {
    return v.raise(e.messageFor(rec.name));
  } catch (const std::bad_alloc&) {
    return v.raise("Out of memory.");
  } catch (const std::exception& e) {
    return v.raise(fmt::format("{}() failed: {}.", rec.name, e.what()));
  } catch (...) {
    return v.raise(fmt::format("{}() failed.", rec.name));
  }
}

void Vm::defineRecord(std::string_view name, int arity, std::shared_ptr<NativeRecord> record) {
  vm_->defineNative(name, arity, &Vm::callNative, std::move(record));
}

void Vm::defineNative(std::string_view name, int arity, Native fn) {
  defineNative(name, arity, std::move(fn), Blocking::No);
}

void Vm::defineNative(std::string_view name, int arity, Native fn, Blocking blocking) {
  auto rec = std::make_shared<NativeRecord>(NativeRecord{.host = this, .name = std::string(name),
                                                         .form = NativeRecord::Form::Native,
                                                         .blocking = blocking == Blocking::Yes,
                                                         .native = std::move(fn)});
  defineRecord(name, arity, std::move(rec));
}

void Vm::defineNative(std::string_view name, int arity, NativeFunction fn, void* data, Blocking blocking) {
  auto rec = std::make_shared<NativeRecord>(NativeRecord{.host = this, .name = std::string(name),
                                                         .form = NativeRecord::Form::PlainData,
                                                         .blocking = blocking == Blocking::Yes,
                                                         .plainData = fn, .data = data});
  defineRecord(name, arity, std::move(rec));
}

void Vm::definePlainNative(std::string_view name, int arity, Result (*fn)(Vm&, Args), Blocking blocking) {
  auto rec = std::make_shared<NativeRecord>(NativeRecord{.host = this, .name = std::string(name),
                                                         .form = NativeRecord::Form::Plain,
                                                         .blocking = blocking == Blocking::Yes,
                                                         .plain = fn});
  defineRecord(name, arity, std::move(rec));
}

Value ClassBuilder::define() {
  std::vector<vm::VM::HostMethod> methods;
  for (const Def& d : methods_) {
    // The VM passes `this` as the first argument.
    const std::string full = name_ + "." + d.name;
    auto rec = std::make_shared<Vm::NativeRecord>(Vm::NativeRecord{.host = vm_, .name = full,
                                                                   .form = Vm::NativeRecord::Form::Method});
    if (d.state != nullptr) {
      rec->form = Vm::NativeRecord::Form::MethodState;
      rec->state = d.state;
      rec->tag = d.tag;
      rec->uninitialised = full + "() needs an instance whose init ran.";
    } else {
      rec->method = d.fn;
    }
    vm::VM::HostMethod m{d.name, d.arity, nullptr};
    m.raw = &Vm::callNative;
    m.data = std::move(rec);
    methods.push_back(std::move(m));
  }
  Value out;
  vm::VM& v = *vm_->vm_;
  v.withP([&] {
    vm::ObjClass* klass = v.newHostClass(name_, methods);
    v.setGlobal(v.globalSlot(name_), vm::Value::object(klass));
    out = vm_->fromInternal(vm::Value::object(klass));
  });
  return out;
}

}  // namespace spindle
