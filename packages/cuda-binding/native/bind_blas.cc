// blasStatus and gemm (cuBLAS, loaded at run time), and ncclStatus (NCCL, likewise).
#include <napi.h>

#include "bindings.h"
#include "cublas.h"
#include "nccl.h"
#include "errors.h"
#include "js_args.h"
#include "runtime.h"
#include "tuned_gemm.h"

namespace arkvale {
namespace {

cudaDataType dtype(const JsFields& f, const char* name) {
  const std::string t = f.string(name);
  if (t == "f16") return CUDA_R_16F;
  if (t == "bf16") return CUDA_R_16BF;
  if (t == "f32") return CUDA_R_32F;
  throw_range(std::string("gemm: ") + name + " must be 'f16', 'bf16' or 'f32', got '" + t + "'");
}

// { loaded, library, version } or { loaded: false, reason }: a run-time dependency's status.
template <class Status>
Napi::Value status_object(Napi::Env env, const Status& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loaded", s.loaded);
  if (s.loaded) {
    o.Set("library", s.library);
    o.Set("version", Napi::Number::New(env, s.version));
  } else {
    o.Set("reason", s.reason);
  }
  return o;
}

// blasStatus(): loads cuBLAS on the first call; never throws.
Napi::Value BlasStatusFn(const Napi::CallbackInfo& info) { return status_object(info.Env(), blas_status()); }

// ncclStatus(wheelLibrary?): loads NCCL on the first call; never throws.
Napi::Value NcclStatusFn(const Napi::CallbackInfo& info) {
  const std::string wheel = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  return status_object(info.Env(), nccl_status(wheel));
}

// gemm({ transA, transB, m, n, k, a, aType, lda, b, bType, ldb, c, cType, ldc,
//        alpha, beta, stream, what, tune? }): column-major, f32 accumulation.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "gemm");
  const JsFields f(args.object(0, "params"), "gemm");
  constexpr int64_t kMaxDim = INT32_MAX;
  GemmCall c;
  c.trans_a = f.boolean("transA");
  c.trans_b = f.boolean("transB");
  c.m = static_cast<int>(f.integer("m", 0, kMaxDim));
  c.n = static_cast<int>(f.integer("n", 0, kMaxDim));
  c.k = static_cast<int>(f.integer("k", 0, kMaxDim));
  c.a = reinterpret_cast<const void*>(static_cast<uintptr_t>(f.pointer("a")));
  c.a_type = dtype(f, "aType");
  c.lda = static_cast<int>(f.integer("lda", 1, kMaxDim));
  c.b = reinterpret_cast<const void*>(static_cast<uintptr_t>(f.pointer("b")));
  c.b_type = dtype(f, "bType");
  c.ldb = static_cast<int>(f.integer("ldb", 1, kMaxDim));
  c.c = reinterpret_cast<void*>(static_cast<uintptr_t>(f.pointer("c")));
  c.c_type = dtype(f, "cType");
  c.ldc = static_cast<int>(f.integer("ldc", 1, kMaxDim));
  c.alpha = static_cast<float>(f.number("alpha"));
  c.beta = static_cast<float>(f.number("beta"));
  const int stream = f.stream();
  c.what = f.string("what");
  c.tune = !f.get("tune").IsUndefined() && f.boolean("tune");
  // Say that cuBLAS is missing before anything else can go wrong.
  if (!blas_status().loaded) throw Failure("cuBLAS is not available: " + blas_status().reason);
  c.stream = stream_of(stream, "gemm");
  gemm(c);
  return info.Env().Undefined();
}

// gemmTuning(): each tuned product shape's choice so far (tuned_gemm.h), in no particular order.
Napi::Value GemmTuning(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<TunedChoice> choices = tuned_choices();
  Napi::Array out = Napi::Array::New(env, choices.size());
  for (size_t i = 0; i < choices.size(); i++) {
    const TunedChoice& t = choices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("what", t.what);
    o.Set("m", t.m);
    o.Set("n", t.n);
    o.Set("k", t.k);
    o.Set("algorithm", t.algorithm);
    o.Set("us", t.us);
    o.Set("gemmExUs", t.gemm_ex_us);
    o.Set("candidates", t.candidates);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace

void register_blas(Napi::Env env, Napi::Object exports) {
  export_function<BlasStatusFn>(env, exports, "blasStatus");
  export_function<NcclStatusFn>(env, exports, "ncclStatus");
  export_function<Gemm>(env, exports, "gemm");
  export_function<GemmTuning>(env, exports, "gemmTuning");
}

}  // namespace arkvale
