#include "js_args.h"

#include <cmath>

namespace arkvale {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

}  // namespace

uint64_t to_pointer(const Napi::Value& v, const Label& at) {
  if (!v.IsBigInt()) throw_type(at.text() + " must be a bigint (a device or pinned host address)");
  bool lossless = false;
  const uint64_t value = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw_range(at.text() + " is not a 64-bit address");
  return value;
}

double to_number(const Napi::Value& v, const Label& at) {
  if (!v.IsNumber()) throw_type(at.text() + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t to_integer(const Napi::Value& v, const Label& at, int64_t min, int64_t max) {
  const double d = to_number(v, at);
  if (!(d == std::floor(d)) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw_range(at.text() + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

size_t to_size(const Napi::Value& v, const Label& at) {
  const double d = to_number(v, at);
  if (!(d == std::floor(d)) || d < 0 || d > kMaxSafeInteger) {
    throw_range(at.text() + " must be a non-negative integer number of bytes, got " + std::to_string(d));
  }
  return static_cast<size_t>(d);
}

bool to_boolean(const Napi::Value& v, const Label& at) {
  if (!v.IsBoolean()) throw_type(at.text() + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string to_string(const Napi::Value& v, const Label& at) {
  if (!v.IsString()) throw_type(at.text() + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

int to_stream(const Napi::Value& v, const Label& at) {
  if (!v.IsNumber()) throw_type(at.text() + " must be a stream id (0 compute, 1 device->host, 2 host->device)");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != 0 && d != 1 && d != 2) throw_range(at.text() + " must be 0 (compute), 1 (device->host) or 2 (host->device)");
  return static_cast<int>(d);
}

Bytes to_bytes(const Napi::Value& v, const Label& at) {
  if (v.IsTypedArray()) {
    Napi::TypedArray array = v.As<Napi::TypedArray>();
    Napi::ArrayBuffer buffer = array.ArrayBuffer();
    auto* base = static_cast<unsigned char*>(buffer.Data());
    return {base == nullptr ? nullptr : base + array.ByteOffset(), array.ByteLength()};
  }
  if (v.IsDataView()) {
    Napi::DataView view = v.As<Napi::DataView>();
    return {view.Data(), view.ByteLength()};
  }
  throw_type(at.text() + " must be an ArrayBufferView (a TypedArray, Buffer or DataView)");
}

Napi::TypedArrayOf<int32_t> to_int32s(const Napi::Value& v, const Label& at) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw_type(at.text() + " must be an Int32Array");
  }
  return v.As<Napi::TypedArrayOf<int32_t>>();
}

Napi::Object to_object(const Napi::Value& v, const Label& at) {
  if (!v.IsObject()) throw_type(at.text() + " must be an object");
  return v.As<Napi::Object>();
}

}  // namespace arkvale
