// trace_cmd.h: `spindle trace view FILE [-o OUT.html]`: turns an execution trace (the
// JSON that --trace FILE wrote) into the offline HTML timeline (runtime/traceview.h).
// OUT defaults to FILE with ".json" replaced by ".html" (or ".html" appended).
#pragma once

namespace spindle::cli {

// argv[0] is the program, argv[1] "trace". Returns the exit code (sysexits, as main).
int traceCommand(int argc, char** argv);

}  // namespace spindle::cli
