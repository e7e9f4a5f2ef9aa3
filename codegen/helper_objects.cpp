#include "kiln/codegen/helper_objects.h"

#include <charconv>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

// The blob: this line, then per helper a line "<key bytes> <object bytes>", the key, the object.
constexpr std::string_view kBlobHeader = "kiln-prebuilt-helpers 1\n";

bool prebuilt_enabled() {
  const char* value = std::getenv("KILN_PREBUILT_HELPERS");
  return value == nullptr || std::string_view(value) != "off";
}

// A decimal size at the front of `text`, which it then starts after.
bool take_size(std::string_view& text, size_t& size) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), size);
  if (error != std::errc() || end == text.data()) return false;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return true;
}

}  // namespace

HelperObjects& HelperObjects::get() {
  static HelperObjects objects;
  return objects;
}

std::shared_ptr<const HelperObject> HelperObjects::find(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || (it->second.prebuilt && !prebuilt_enabled())) return nullptr;
  return it->second.helper;
}

void HelperObjects::add(const std::string& key, std::shared_ptr<const HelperObject> helper) {
  std::lock_guard lock(mutex_);
  ++compile_count_;
  auto it = entries_.find(key);
  // A prebuilt helper that was skipped (KILN_PREBUILT_HELPERS=off) gives way to the compiled one.
  if (it != entries_.end() && it->second.prebuilt)
    it->second = Entry{std::move(helper), false};
  else
    entries_.emplace(key, Entry{std::move(helper), false});
}

size_t HelperObjects::compile_count() {
  std::lock_guard lock(mutex_);
  return compile_count_;
}

size_t HelperObjects::prebuilt_count() {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [key, entry] : entries_)
    n += entry.prebuilt ? 1 : 0;
  return n;
}

std::map<std::string, std::shared_ptr<const HelperObject>> HelperObjects::compiled() {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::shared_ptr<const HelperObject>> out;
  for (const auto& [key, entry] : entries_)
    if (!entry.prebuilt) out.emplace(key, entry.helper);
  return out;
}

bool HelperObjects::add_prebuilt(std::string_view blob) {
  if (!blob.starts_with(kBlobHeader)) return false;
  blob.remove_prefix(kBlobHeader.size());
  std::vector<std::pair<std::string, std::shared_ptr<const HelperObject>>> parsed;
  while (!blob.empty()) {
    size_t key_size = 0, object_size = 0;
    if (!take_size(blob, key_size) || !blob.starts_with(' ')) return false;
    blob.remove_prefix(1);
    if (!take_size(blob, object_size) || !blob.starts_with('\n')) return false;
    blob.remove_prefix(1);
    if (key_size == 0 || object_size == 0 || blob.size() < key_size ||
        blob.size() - key_size < object_size)
      return false;
    std::string key(blob.substr(0, key_size));
    auto helper = std::make_shared<HelperObject>();
    helper->object = std::string(blob.substr(key_size, object_size));
    // The name is the key up to its first '|' (compiler.cpp).
    helper->text = fmt::format("; {}: prebuilt with Kiln (its IR: KILN_PREBUILT_HELPERS=off)\n",
                               key.substr(0, key.find('|')));
    blob.remove_prefix(key_size + object_size);
    parsed.emplace_back(std::move(key), std::move(helper));
  }
  std::lock_guard lock(mutex_);
  for (auto& [key, helper] : parsed)
    entries_.emplace(std::move(key), Entry{std::move(helper), true});
  return true;
}

std::string HelperObjects::to_blob(
    const std::map<std::string, std::shared_ptr<const HelperObject>>& helpers) {
  std::string blob(kBlobHeader);
  for (const auto& [key, helper] : helpers)
    blob += fmt::format("{} {}\n{}{}", key.size(), helper->object.size(), key, helper->object);
  return blob;
}

}  // namespace kiln::codegen
