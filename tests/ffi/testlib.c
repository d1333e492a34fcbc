// A shared library for the FFI tests: keeps a pointer across calls (the case that needs
// pinning) and exercises every argument and result type.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void* kept;

void spindle_test_keep(void* p) { kept = p; }
int64_t spindle_test_read_kept(int32_t offset) {
  int64_t v;
  memcpy(&v, (const char*)kept + offset, sizeof v);
  return v;
}
void spindle_test_write_kept(int32_t offset, int64_t v) { memcpy((char*)kept + offset, &v, sizeof v); }
void* spindle_test_kept(void) { return kept; }

int8_t spindle_test_neg8(int8_t x) { return (int8_t)-x; }
uint8_t spindle_test_inc_u8(uint8_t x) { return (uint8_t)(x + 1); }
int16_t spindle_test_mul16(int16_t a, int16_t b) { return (int16_t)(a * b); }
uint16_t spindle_test_u16(uint16_t x) { return x; }
int32_t spindle_test_add32(int32_t a, int32_t b) { return a + b; }
uint32_t spindle_test_u32max(void) { return 0xffffffffu; }
int64_t spindle_test_add64(int64_t a, int64_t b) { return a + b; }
uint64_t spindle_test_shl(uint64_t x, uint32_t n) { return x << n; }
double spindle_test_hypot2(double a, double b) { return a * a + b * b; }
float spindle_test_halve(float x) { return x / 2; }
const char* spindle_test_greet(void) { return "hello from C"; }
const char* spindle_test_null(void) { return NULL; }
size_t spindle_test_count(const char* s, int8_t c) {
  size_t n = 0;
  for (; *s; ++s) n += *s == c;
  return n;
}
void spindle_test_fill(uint8_t* p, size_t n, uint8_t v) { memset(p, v, n); }
int64_t spindle_test_sum(const uint8_t* p, size_t n) {
  int64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}
// Reads the first word of the object whose address is stored at p (a pointer to a
// pointer: the buffer passed must hold a pinned object's address).
int64_t spindle_test_deref(void* const* p) {
  int64_t v;
  memcpy(&v, *p, sizeof v);
  return v;
}
