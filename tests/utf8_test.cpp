// ir/utf8.h: well-formed UTF-8 per Unicode's table 3-7.
#include <catch2/catch.hpp>

#include "kiln/ir/utf8.h"

using kiln::ir::is_utf8;
using kiln::ir::utf8_length;

TEST_CASE("utf8 accepts well-formed sequences of every length", "[utf8]") {
  CHECK(is_utf8(""));
  CHECK(is_utf8("dense/kernel"));
  CHECK(is_utf8("\xc3\xa9"));          // é
  CHECK(is_utf8("\xe2\x82\xac"));      // €
  CHECK(is_utf8("\xf0\x9d\x84\x9e"));  // 𝄞
  CHECK(is_utf8("\xef\xbf\xbf"));      // U+FFFF
  CHECK(is_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
  CHECK(utf8_length("a\xe2\x82\xac", 1) == 3);
}

TEST_CASE("utf8 rejects overlong forms, surrogates, truncation and stray bytes", "[utf8]") {
  CHECK_FALSE(is_utf8("\xc0\x80"));          // overlong NUL
  CHECK_FALSE(is_utf8("\xc1\xbf"));          // overlong
  CHECK_FALSE(is_utf8("\xe0\x80\x80"));      // overlong 3-byte
  CHECK_FALSE(is_utf8("\xed\xa0\x80"));      // surrogate U+D800
  CHECK_FALSE(is_utf8("\xf0\x80\x80\x80"));  // overlong 4-byte
  CHECK_FALSE(is_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(is_utf8("\xf5\x80\x80\x80"));  // no such lead byte
  CHECK_FALSE(is_utf8("\xe2\x82"));          // truncated
  CHECK_FALSE(is_utf8("\x80"));              // stray continuation
  CHECK_FALSE(is_utf8("ok\xff"));
  CHECK(utf8_length("\xe2\x28\xa1", 0) == 0);  // bad continuation
}
