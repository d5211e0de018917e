// upload, download, copy, copyPages, memset: every copy is queued on one of the
// three streams; only download waits (it returns the bytes).
#include <cuda_runtime_api.h>
#include <napi.h>

#include <algorithm>
#include <cstring>

#include "bindings.h"
#include "errors.h"
#include "js_args.h"
#include "page_runs.h"
#include "runtime.h"

namespace arkvale {
namespace {

void* as_ptr(uint64_t address) { return reinterpret_cast<void*>(static_cast<uintptr_t>(address)); }

// Staging pieces are copies the ring's events can follow; inside a graph capture
// they would replay stale ring bytes, so they are refused there.
void refuse_capture(cudaStream_t stream, const char* fn, const std::string& what) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(stream, &status), "cudaStreamIsCapturing", what);
  if (status != cudaStreamCaptureStatusNone) {
    throw Failure(std::string(fn) + " cannot run while the stream is being captured into a CUDA graph (" + what +
                  "): its staging copies would replay stale bytes; upload before beginCapture");
  }
}

// upload(dst, src, stream, what): src is copied into the pinned ring now (the
// caller may reuse it at once); the host->device copies run async on `stream`.
Napi::Value Upload(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "upload");
  const uint64_t dst = args.pointer(0, "dst");
  const Bytes src = args.bytes(1, "src");
  const int stream_id = args.stream(2);
  const std::string what = args.string(3, "what");
  cudaStream_t stream = stream_of(stream_id, "upload");
  if (src.size == 0) return info.Env().Undefined();
  refuse_capture(stream, "upload", what);
  StagingRing& ring = runtime().ring;
  for (size_t done = 0; done < src.size;) {
    const size_t piece = std::min(src.size - done, ring.capacity());
    size_t offset = 0;
    unsigned char* staging = ring.reserve(piece, &offset, what);
    std::memcpy(staging, static_cast<const unsigned char*>(src.data) + done, piece);
    check_cuda(cudaMemcpyAsync(static_cast<unsigned char*>(as_ptr(dst)) + done, staging, piece, cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync", what);
    ring.commit(offset, piece, stream, what);
    done += piece;
  }
  return info.Env().Undefined();
}

// download(src, dst, stream, what): synchronous; each ring-sized piece is
// copied device->host on `stream`, waited for (counted) and moved into dst.
Napi::Value Download(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "download");
  const uint64_t src = args.pointer(0, "src");
  const Bytes dst = args.bytes(1, "dst");
  const int stream_id = args.stream(2);
  const std::string what = args.string(3, "what");
  cudaStream_t stream = stream_of(stream_id, "download");
  if (dst.size == 0) return info.Env().Undefined();
  refuse_capture(stream, "download", what);
  StagingRing& ring = runtime().ring;
  for (size_t done = 0; done < dst.size;) {
    const size_t piece = std::min(dst.size - done, ring.capacity());
    size_t offset = 0;
    unsigned char* staging = ring.reserve(piece, &offset, what);
    check_cuda(cudaMemcpyAsync(staging, static_cast<const unsigned char*>(as_ptr(src)) + done, piece, cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync", what);
    sync_stream(stream, what);
    std::memcpy(static_cast<unsigned char*>(dst.data) + done, staging, piece);
    done += piece;
  }
  return info.Env().Undefined();
}

// copy(dst, src, bytes, stream, what): any direction (unified addressing).
Napi::Value Copy(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "copy");
  const uint64_t dst = args.pointer(0, "dst");
  const uint64_t src = args.pointer(1, "src");
  const size_t bytes = args.size(2, "bytes");
  const int stream_id = args.stream(3);
  const std::string what = args.string(4, "what");
  cudaStream_t stream = stream_of(stream_id, "copy");
  if (bytes == 0) return info.Env().Undefined();
  check_cuda(cudaMemcpyAsync(as_ptr(dst), as_ptr(src), bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync", what);
  return info.Env().Undefined();
}

// copy2d(dst, dstPitch, src, srcPitch, widthBytes, rows, stream, what): `rows` rows of
// `widthBytes` each, from rows `srcPitch` bytes apart to rows `dstPitch` bytes apart
// (cudaMemcpy2DAsync): a rank-major all-gather laid side by side.
Napi::Value Copy2d(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "copy2d");
  const uint64_t dst = args.pointer(0, "dst");
  const size_t dst_pitch = args.size(1, "dstPitch");
  const uint64_t src = args.pointer(2, "src");
  const size_t src_pitch = args.size(3, "srcPitch");
  const size_t width = args.size(4, "widthBytes");
  const size_t rows = args.size(5, "rows");
  const int stream_id = args.stream(6);
  const std::string what = args.string(7, "what");
  cudaStream_t stream = stream_of(stream_id, "copy2d");
  if (width > dst_pitch || width > src_pitch) throw_range("copy2d: widthBytes exceeds a pitch (" + what + ")");
  if (width == 0 || rows == 0) return info.Env().Undefined();
  check_cuda(cudaMemcpy2DAsync(as_ptr(dst), dst_pitch, as_ptr(src), src_pitch, width, rows, cudaMemcpyDefault, stream), "cudaMemcpy2DAsync", what);
  return info.Env().Undefined();
}

// copyPages(dst, dstSlots, src, srcSlots, pageBytes, stream, what): page
// dstSlots[i] of dst <- page srcSlots[i] of src; one copy per run of consecutive
// slots on both sides.
Napi::Value CopyPages(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "copyPages");
  const uint64_t dst = args.pointer(0, "dst");
  Napi::TypedArrayOf<int32_t> dst_slots = args.int32s(1, "dstSlots");
  const uint64_t src = args.pointer(2, "src");
  Napi::TypedArrayOf<int32_t> src_slots = args.int32s(3, "srcSlots");
  const size_t page_bytes = args.size(4, "pageBytes");
  const int stream_id = args.stream(5);
  const std::string what = args.string(6, "what");
  cudaStream_t stream = stream_of(stream_id, "copyPages");
  const size_t count = dst_slots.ElementLength();
  if (src_slots.ElementLength() != count) {
    throw_range("copyPages: dstSlots has " + std::to_string(count) + " slots but srcSlots has " +
                std::to_string(src_slots.ElementLength()) + " (" + what + ")");
  }
  if (page_bytes == 0) throw_range("copyPages: pageBytes must be at least 1 (" + what + ")");
  for (size_t i = 0; i < count; i++) {
    if (dst_slots[i] < 0 || src_slots[i] < 0) throw_range("copyPages: slot " + std::to_string(i) + " is negative (" + what + ")");
  }
  for (const PageRun& run : page_runs(dst_slots.Data(), src_slots.Data(), count)) {
    auto* to = static_cast<unsigned char*>(as_ptr(dst)) + static_cast<size_t>(run.dst_slot) * page_bytes;
    const auto* from = static_cast<const unsigned char*>(as_ptr(src)) + static_cast<size_t>(run.src_slot) * page_bytes;
    check_cuda(cudaMemcpyAsync(to, from, static_cast<size_t>(run.pages) * page_bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync", what);
  }
  return info.Env().Undefined();
}

// memset(dst, byte, bytes, stream, what)
Napi::Value Memset(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "memset");
  const uint64_t dst = args.pointer(0, "dst");
  const int byte = static_cast<int>(args.integer(1, "byte", 0, 255));
  const size_t bytes = args.size(2, "bytes");
  const int stream_id = args.stream(3);
  const std::string what = args.string(4, "what");
  cudaStream_t stream = stream_of(stream_id, "memset");
  if (bytes == 0) return info.Env().Undefined();
  check_cuda(cudaMemsetAsync(as_ptr(dst), byte, bytes, stream), "cudaMemsetAsync", what);
  return info.Env().Undefined();
}

}  // namespace

void register_copies(Napi::Env env, Napi::Object exports) {
  export_function<Upload>(env, exports, "upload");
  export_function<Download>(env, exports, "download");
  export_function<Copy>(env, exports, "copy");
  export_function<Copy2d>(env, exports, "copy2d");
  export_function<CopyPages>(env, exports, "copyPages");
  export_function<Memset>(env, exports, "memset");
}

}  // namespace arkvale
