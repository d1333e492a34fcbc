// blocking.cc: BlockingSection and ReacquireP (see blocking.h).
#include "vm/blocking.h"

#include "runtime/m.h"
#include "runtime/pheap.h"
#include "runtime/proc.h"
#include "vm/fiber.h"

namespace spindle::vm {

namespace {
thread_local BlockingSection* tlsSection = nullptr;  // the innermost open section
}  // namespace

BlockingSection::BlockingSection() : outer_(tlsSection) {
  runtime::M* m = runtime::getm();
  if (m != nullptr && m->curg != nullptr && runtime::currentP() != nullptr) {
    const ObjFiber* caller = currentFiber();
    quiescent_ = caller != nullptr && caller->body->g() == m->curg;
    entered_ = true;
    runtime::Sched::enterSyscall(quiescent_);
  }
  tlsSection = this;
}

BlockingSection::~BlockingSection() {
  tlsSection = outer_;
  if (entered_) runtime::Sched::exitSyscall();
}

bool ReacquireP::needed() {
  return tlsSection != nullptr && tlsSection->entered_ && runtime::currentP() == nullptr;
}

ReacquireP::ReacquireP() {
  if (!needed()) return;
  section_ = tlsSection;
  tlsSection = section_->outer_;  // a callback's own natives see no open section of ours
  runtime::Sched::exitSyscall();
}

ReacquireP::~ReacquireP() {
  if (section_ == nullptr) return;
  runtime::Sched::enterSyscall(section_->quiescent_);
  tlsSection = section_;
}

}  // namespace spindle::vm
