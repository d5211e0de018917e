// A tensor-parallel rank's NCCL communicator (docs/DESIGN.md, "Tensor parallelism"):
// ncclUniqueId, ncclCommInit, ncclAllReduce, ncclAllGather and ncclCommDestroy, over
// the library nccl.cc loaded at run time. Collectives are queued on the compute stream
// and return at once, as every other launch does.
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "js_args.h"
#include "nccl.h"
#include "runtime.h"

namespace arkvale {
namespace {

// Communicators by handle (an index; a destroyed one's slot stays null).
std::vector<ncclComm_t>& comms() {
  static auto* c = new std::vector<ncclComm_t>();
  return *c;
}

const NcclApi& api(const char* fn) {
  const NcclStatus& s = nccl_status("");
  if (!s.loaded) throw Failure(std::string(fn) + ": NCCL is not available: " + s.reason);
  return s.api;
}

void check(const NcclApi& a, ncclResult_t r, const char* call, const std::string& what) {
  if (r == kNcclSuccess) return;
  const char* text = a.get_error_string ? a.get_error_string(r) : nullptr;
  throw Failure(std::string(call) + " failed (" + what + "): " + (text ? text : "error " + std::to_string(r)));
}

ncclComm_t comm_of(const JsArgs& args, size_t i, const char* fn) {
  const auto handle = static_cast<size_t>(args.integer(i, "comm", 0, INT32_MAX));
  if (handle >= comms().size() || comms()[handle] == nullptr) throw Failure(std::string(fn) + ": no communicator " + std::to_string(handle));
  return comms()[handle];
}

int nccl_type(const std::string& t, const char* fn) {
  if (t == "f16") return kNcclFloat16;
  if (t == "bf16") return kNcclBfloat16;
  if (t == "f32") return kNcclFloat32;
  throw_range(std::string(fn) + ": dtype must be 'f16', 'bf16' or 'f32', got '" + t + "'");
}

const void* as_ptr(uint64_t address) { return reinterpret_cast<const void*>(static_cast<uintptr_t>(address)); }

// ncclUniqueId(): the 128 bytes rank 0 makes and every rank's ncclCommInit takes.
Napi::Value UniqueId(const Napi::CallbackInfo& info) {
  const NcclApi& a = api("ncclUniqueId");
  ncclUniqueId id{};
  check(a, a.get_unique_id(&id), "ncclGetUniqueId", "a new communicator's id");
  return Napi::Buffer<char>::Copy(info.Env(), id.internal, sizeof(id.internal));
}

// ncclCommInit(id, size, rank): this process's rank of a communicator on its device;
// blocks until every rank has joined. Returns a handle.
Napi::Value CommInit(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "ncclCommInit");
  const Bytes bytes = args.bytes(0, "id");
  const int size = static_cast<int>(args.integer(1, "size", 1, 1 << 16));
  const int rank = static_cast<int>(args.integer(2, "rank", 0, size - 1));
  ncclUniqueId id{};
  if (bytes.size != sizeof(id.internal)) throw_range("ncclCommInit: id must be the 128 bytes of ncclUniqueId, got " + std::to_string(bytes.size));
  const NcclApi& a = api("ncclCommInit");
  require_init("ncclCommInit");
  std::memcpy(id.internal, bytes.data, sizeof(id.internal));
  ncclComm_t comm = nullptr;
  check(a, a.comm_init_rank(&comm, size, id, rank), "ncclCommInitRank", "rank " + std::to_string(rank) + " of " + std::to_string(size));
  comms().push_back(comm);
  return Napi::Number::New(info.Env(), static_cast<double>(comms().size() - 1));
}

// A collective's arguments: (comm, src, dst, count, dtype, what).
struct Collective {
  ncclComm_t comm;
  const void* src;
  void* dst;
  size_t count;
  int type;
  std::string what;
};

Collective collective_args(const JsArgs& args, const char* fn) {
  Collective c{comm_of(args, 0, fn), as_ptr(args.pointer(1, "src")), const_cast<void*>(as_ptr(args.pointer(2, "dst"))), args.size(3, "count"), 0, ""};
  c.type = nccl_type(args.string(4, "dtype"), fn);
  c.what = args.string(5, "what");
  return c;
}

// ncclAllReduce(comm, src, dst, count, dtype, what): the element-wise sum over the ranks, on the compute stream.
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "ncclAllReduce");
  const NcclApi& a = api("ncclAllReduce");
  const Collective c = collective_args(args, "ncclAllReduce");
  check(a, a.all_reduce(c.src, c.dst, c.count, c.type, kNcclSum, c.comm, stream_of(0, "ncclAllReduce")), "ncclAllReduce", c.what);
  return info.Env().Undefined();
}

// ncclAllGather(comm, src, dst, sendCount, dtype, what): every rank's `sendCount` elements, rank-major, on the compute stream.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "ncclAllGather");
  const NcclApi& a = api("ncclAllGather");
  const Collective c = collective_args(args, "ncclAllGather");
  check(a, a.all_gather(c.src, c.dst, c.count, c.type, c.comm, stream_of(0, "ncclAllGather")), "ncclAllGather", c.what);
  return info.Env().Undefined();
}

// ncclCommDestroy(comm): frees the communicator (after its queued collectives).
Napi::Value CommDestroy(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "ncclCommDestroy");
  const NcclApi& a = api("ncclCommDestroy");
  ncclComm_t comm = comm_of(args, 0, "ncclCommDestroy");
  comms()[static_cast<size_t>(args.integer(0, "comm", 0, INT32_MAX))] = nullptr;
  check(a, a.comm_destroy(comm), "ncclCommDestroy", "a communicator");
  return info.Env().Undefined();
}

}  // namespace

void register_nccl(Napi::Env env, Napi::Object exports) {
  export_function<UniqueId>(env, exports, "ncclUniqueId");
  export_function<CommInit>(env, exports, "ncclCommInit");
  export_function<AllReduce>(env, exports, "ncclAllReduce");
  export_function<AllGather>(env, exports, "ncclAllGather");
  export_function<CommDestroy>(env, exports, "ncclCommDestroy");
}

}  // namespace arkvale
