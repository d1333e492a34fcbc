// The one doctest main() shared by every test target: tests list only their sources
// and depend on //tests:doctest_main.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
