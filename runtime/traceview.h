// traceview.h: the execution trace's offline viewer (`spindle trace view`, `--trace
// FILE.html`): one self-contained HTML page (no network: the trace JSON, the script and
// the styles are inline) that draws the trace on a canvas: one row per track (Ps, the
// collector, STW pauses, no-P threads) with fiber spans, GC phases, assists, park and
// unpark marks and spawn arrows, one row per counter; wheel zooms around the pointer,
// drag pans, double-click resets; hovering a span shows its fields; a table lists every
// stop-the-world pause. After drawing, the page writes what it drew into
// <div id="status" data-tracks=N data-events=M> and the track names into
// <ul id="tracks">, so a headless browser can check it (vm/cli/trace_view_test.sh).
//
// Invariant: the embedded JSON cannot end the <script> element early ("</" is written
// as "<\/", which JSON reads back as the same string).
#pragma once

#include <string>
#include <string_view>

namespace spindle::runtime::trace {

// The page for the trace-event JSON `json` (trace.h's format), titled `title`.
std::string traceHTML(std::string_view json, std::string_view title);
// The same page in three parts, for a writer that streams the JSON (trace.cc): the head
// (up to the JSON), the JSON with "</" written as "<\/", then the tail.
std::string traceHTMLHead(std::string_view title);
std::string_view traceHTMLTail();

}  // namespace spindle::runtime::trace
