// The source of kiln_test_pch, whose only job is the tests' precompiled header
// (tests/CMakeLists.txt).
int main() {
  return 0;
}
