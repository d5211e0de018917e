// Each bind_*.cc file adds its functions to the module's exports.
#pragma once

#include <napi.h>

namespace arkvale {

void register_device(Napi::Env env, Napi::Object exports);   // probe, init, memInfo, alloc, free, ...
void register_host(Napi::Env env, Napi::Object exports);     // hostAlloc, hostFree, hostView
void register_copies(Napi::Env env, Napi::Object exports);   // upload, download, copy, copy2d, copyPages, memset
void register_events(Napi::Env env, Napi::Object exports);   // recordEvent, waitEvent, ..., synchronize, elapsedMs
void register_kernels(Napi::Env env, Napi::Object exports);  // kernels, launch
void register_graphs(Napi::Env env, Napi::Object exports);   // beginCapture, endCapture, launchGraph, destroyGraph
void register_blas(Napi::Env env, Napi::Object exports);     // blasStatus, ncclStatus, gemm
void register_nccl(Napi::Env env, Napi::Object exports);     // ncclUniqueId, ncclCommInit, ncclAllReduce, ncclAllGather, ncclCommDestroy

}  // namespace arkvale
