// Checked access to the addon's positional JS arguments. The TypeScript layer
// validates shapes first and throws the user-facing errors; these checks are the
// safety net that keeps a wrong call from reading or writing outside a typed
// array, so they throw plain TypeError/RangeError.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace arkvale {

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  Napi::Env env() const { return info_.Env(); }

  // An integer argument in [min, 2^31).
  int integer(size_t i, const char* name, int min) const {
    const double v = number(i, name);
    if (v != std::floor(v) || v < min || v > INT32_MAX) {
      fail<Napi::RangeError>(std::string(name) + " must be an integer >= " + std::to_string(min));
    }
    return static_cast<int>(v);
  }

  double number(size_t i, const char* name) const {
    if (i >= info_.Length() || !info_[i].IsNumber()) fail<Napi::TypeError>(std::string(name) + " must be a number");
    return info_[i].As<Napi::Number>().DoubleValue();
  }

  // A Float32Array of exactly `length` elements.
  float* f32(size_t i, const char* name, size_t length) const {
    return typed<float, napi_float32_array>(i, name, length, "Float32Array");
  }

  // Like f32, but null/undefined gives nullptr.
  float* optional_f32(size_t i, const char* name, size_t length) const {
    if (i >= info_.Length() || info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return f32(i, name, length);
  }

  int32_t* i32(size_t i, const char* name, size_t length) const {
    return typed<int32_t, napi_int32_array>(i, name, length, "Int32Array");
  }

  // A Float32Array of any length that is a whole multiple of `unit`; returns
  // its data and sets `length`.
  float* f32_multiple(size_t i, const char* name, size_t unit, size_t* length) const {
    Napi::TypedArrayOf<float> array = checked<float, napi_float32_array>(i, name, "Float32Array");
    *length = array.ElementLength();
    if (unit == 0 || *length % unit != 0) {
      fail<Napi::RangeError>(std::string(name) + " must hold a whole number of " + std::to_string(unit) + "-element pages");
    }
    return array.Data();
  }

  // Product of sizes, refusing overflow.
  size_t product(std::initializer_list<int> dims) const {
    size_t total = 1;
    for (int d : dims) {
      if (__builtin_mul_overflow(total, static_cast<size_t>(d), &total)) fail<Napi::RangeError>("tensor size overflows");
    }
    return total;
  }

  template <class Error>
  [[noreturn]] void fail(const std::string& message) const {
    throw Error::New(env(), std::string(op_) + ": " + message);
  }

 private:
  template <class T, napi_typedarray_type Type>
  Napi::TypedArrayOf<T> checked(size_t i, const char* name, const char* type_name) const {
    if (i >= info_.Length() || !info_[i].IsTypedArray() || info_[i].As<Napi::TypedArray>().TypedArrayType() != Type) {
      fail<Napi::TypeError>(std::string(name) + " must be a " + type_name);
    }
    return info_[i].As<Napi::TypedArrayOf<T>>();
  }

  template <class T, napi_typedarray_type Type>
  T* typed(size_t i, const char* name, size_t length, const char* type_name) const {
    Napi::TypedArrayOf<T> array = checked<T, Type>(i, name, type_name);
    if (array.ElementLength() != length) {
      fail<Napi::RangeError>(std::string(name) + " has " + std::to_string(array.ElementLength()) + " elements, expected " +
                             std::to_string(length));
    }
    return array.Data();
  }

  const Napi::CallbackInfo& info_;
  const char* op_;
};

}  // namespace arkvale
