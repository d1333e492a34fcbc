// fmt_impl.cc: {fmt}'s compiled part, built from the system's headers (libfmt-dev 9.1)
// into every binary instead of linking libfmt.so.
//
// Design. libfmt-dev ships its implementation as format-inl.h beside the shared library;
// this file is upstream's src/format.cc: the header plus the explicit instantiations the
// other headers declare extern. Linking it statically spares the dynamic loader one
// library to map and its symbol relocations at every start-up of `spindle` (issue 20:
// start-up as fast as Lua's). Invariant: nothing in the tree includes fmt/os.h (upstream's
// src/os.cc, not built here), so these definitions are every out-of-line symbol used.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

#ifndef FMT_STATIC_THOUSANDS_SEPARATOR
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
#endif

// Explicit instantiations for char.
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API void buffer<char>::append(const char*, const char*);
template FMT_API void vformat_to(buffer<char>&, string_view, basic_format_args<FMT_BUFFER_CONTEXT(char)>,
                                 locale_ref);

// Explicit instantiations for wchar_t.
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template FMT_API auto decimal_point_impl(locale_ref) -> wchar_t;
template FMT_API void buffer<wchar_t>::append(const wchar_t*, const wchar_t*);

}  // namespace detail
FMT_END_NAMESPACE
