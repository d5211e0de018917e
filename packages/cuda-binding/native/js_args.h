// Checked conversion of JavaScript arguments (positional, or fields of an options
// object) into native values. A wrong kind throws a TypeError and a bad value a
// RangeError, both naming the function and the argument: the TypeScript layer
// validates first, these checks keep a wrong call from touching the wrong memory.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "errors.h"

namespace arkvale {

// Where a value came from, for messages: "copyPages: dstSlots".
struct Label {
  const char* fn;
  const char* name;
  std::string text() const { return std::string(fn) + ": " + name; }
};

// A view's bytes (a TypedArray, Buffer or DataView).
struct Bytes {
  void* data;
  size_t size;
};

uint64_t to_pointer(const Napi::Value& v, const Label& at);
int64_t to_integer(const Napi::Value& v, const Label& at, int64_t min, int64_t max);
size_t to_size(const Napi::Value& v, const Label& at);  // a safe integer >= 0
double to_number(const Napi::Value& v, const Label& at);
bool to_boolean(const Napi::Value& v, const Label& at);
std::string to_string(const Napi::Value& v, const Label& at);
int to_stream(const Napi::Value& v, const Label& at);  // 0 compute, 1 device->host, 2 host->device
Bytes to_bytes(const Napi::Value& v, const Label& at);
Napi::TypedArrayOf<int32_t> to_int32s(const Napi::Value& v, const Label& at);
Napi::Object to_object(const Napi::Value& v, const Label& at);

// Positional arguments of one call.
class JsArgs {
 public:
  JsArgs(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}
  Napi::Env env() const { return info_.Env(); }
  bool has(size_t i) const { return i < info_.Length() && !info_[i].IsUndefined(); }
  Napi::Value at(size_t i) const { return info_[i]; }

  uint64_t pointer(size_t i, const char* name) const { return to_pointer(info_[i], {fn_, name}); }
  int64_t integer(size_t i, const char* name, int64_t min, int64_t max) const { return to_integer(info_[i], {fn_, name}, min, max); }
  size_t size(size_t i, const char* name) const { return to_size(info_[i], {fn_, name}); }
  double number(size_t i, const char* name) const { return to_number(info_[i], {fn_, name}); }
  std::string string(size_t i, const char* name) const { return to_string(info_[i], {fn_, name}); }
  int stream(size_t i) const { return to_stream(info_[i], {fn_, "stream"}); }
  Bytes bytes(size_t i, const char* name) const { return to_bytes(info_[i], {fn_, name}); }
  Napi::TypedArrayOf<int32_t> int32s(size_t i, const char* name) const { return to_int32s(info_[i], {fn_, name}); }
  Napi::Object object(size_t i, const char* name) const { return to_object(info_[i], {fn_, name}); }

 private:
  const Napi::CallbackInfo& info_;
  const char* fn_;
};

// Named fields of an options object (gemm's parameters).
class JsFields {
 public:
  JsFields(Napi::Object object, const char* fn) : object_(object), fn_(fn) {}
  Napi::Value get(const char* name) const { return object_.Get(name); }

  uint64_t pointer(const char* name) const { return to_pointer(get(name), {fn_, name}); }
  int64_t integer(const char* name, int64_t min, int64_t max) const { return to_integer(get(name), {fn_, name}, min, max); }
  double number(const char* name) const { return to_number(get(name), {fn_, name}); }
  bool boolean(const char* name) const { return to_boolean(get(name), {fn_, name}); }
  std::string string(const char* name) const { return to_string(get(name), {fn_, name}); }
  int stream() const { return to_stream(get("stream"), {fn_, "stream"}); }

 private:
  Napi::Object object_;
  const char* fn_;
};

// Runs a binding and turns the addon's exceptions into JavaScript ones.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgumentError& e) {
    if (e.kind() == ArgumentError::Kind::Type) throw Napi::TypeError::New(info.Env(), e.what());
    throw Napi::RangeError::New(info.Env(), e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void export_function(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, guarded<F>, name));
}

}  // namespace arkvale
