// GPU check harness (test support): runs the jobs of DIR/jobs.txt -- kernels found by
// name in the generated registry, launched with cudaLaunchKernel from packed parameter
// buffers whose pointer slots are patched with device (or mapped host) addresses --
// and writes the requested buffers to OUTDIR. Usage: harness DIR OUTDIR
//
//   buf <id> <file|-> <bytes> <device|mapped>   allocate (and fill from file, or zero)
//   job <kernel> <gx> <gy> <gz> <params hex>     the next launch
//   ptr <offset> <buf id>                        patch a pointer parameter
//   launch                                       launch and synchronise
//   time <reps>                                  re-launch reps times, print the mean
//   out <buf id> <file>                          write a buffer back
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <fstream>
#include <sstream>
#include "arkvale_registry.h"

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); exit(2); } } while (0)

static std::vector<unsigned char> readFile(const std::string& p) {
  std::ifstream f(p, std::ios::binary); return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
static std::vector<unsigned char> hex(const std::string& h) {
  std::vector<unsigned char> out; for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back((unsigned char)strtoul(h.substr(i, 2).c_str(), 0, 16)); return out;
}

int main(int argc, char** argv) {
  std::string dir = argv[1], outDir = argv[2];
  std::ifstream spec(dir + "/jobs.txt");
  std::vector<void*> dev; std::vector<size_t> sizes; std::vector<void*> hostMapped;
  std::string line;
  std::vector<unsigned char> params; std::vector<std::pair<int,int>> patches; std::string kname; unsigned g[3] = {1,1,1};
  int jobs = 0;
  while (std::getline(spec, line)) {
    std::istringstream in(line); std::string cmd; in >> cmd;
    if (cmd == "buf") {
      int id; std::string file; size_t n; std::string where; in >> id >> file >> n >> where;
      void* d = 0; void* h = 0;
      if (where == "mapped") { CK(cudaHostAlloc(&h, n, cudaHostAllocMapped)); CK(cudaHostGetDevicePointer(&d, h, 0)); }
      else CK(cudaMalloc(&d, n));
      if (file != "-") { auto bytes = readFile(dir + "/" + file); if (bytes.size() != n) { fprintf(stderr, "size mismatch %s\n", file.c_str()); return 2; }
        if (h) memcpy(h, bytes.data(), n); else CK(cudaMemcpy(d, bytes.data(), n, cudaMemcpyHostToDevice)); }
      else { if (h) memset(h, 0, n); else CK(cudaMemset(d, 0, n)); }
      if ((int)dev.size() <= id) { dev.resize(id + 1); sizes.resize(id + 1); hostMapped.resize(id + 1); }
      dev[id] = d; sizes[id] = n; hostMapped[id] = h;
    } else if (cmd == "job") {
      std::string h; in >> kname >> g[0] >> g[1] >> g[2] >> h; params = hex(h); patches.clear();
    } else if (cmd == "ptr") {
      int off, id; in >> off >> id; patches.push_back({off, id});
    } else if (cmd == "launch") {
      for (auto& p : patches) { unsigned long long a = (unsigned long long)dev[p.second]; memcpy(params.data() + p.first, &a, 8); }
      const ArkvaleKernel* k = arkvale_find_kernel(kname.c_str());
      if (!k) { fprintf(stderr, "no kernel %s\n", kname.c_str()); return 2; }
      if (k->paramBytes != params.size()) { fprintf(stderr, "param bytes %u != %zu for %s\n", k->paramBytes, params.size(), kname.c_str()); return 2; }
      std::vector<void*> args(k->paramCount);
      for (unsigned i = 0; i < k->paramCount; i++) args[i] = params.data() + k->paramOffsets[i];
      // Kernels past 48 KB of shared memory take it as dynamic shared memory, opted in.
      if (k->dynamicSharedBytes) CK(cudaFuncSetAttribute(k->fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)k->dynamicSharedBytes));
      CK(cudaLaunchKernel(k->fn, dim3(g[0], g[1], g[2]), dim3(k->blockThreads), args.data(), k->dynamicSharedBytes, 0));
      CK(cudaGetLastError()); CK(cudaDeviceSynchronize()); jobs++;
    } else if (cmd == "out") {
      int id; std::string file; in >> id >> file;
      std::vector<unsigned char> bytes(sizes[id]);
      if (hostMapped[id]) memcpy(bytes.data(), hostMapped[id], sizes[id]); else CK(cudaMemcpy(bytes.data(), dev[id], sizes[id], cudaMemcpyDeviceToHost));
      std::ofstream(outDir + "/" + file, std::ios::binary).write((const char*)bytes.data(), bytes.size());
    } else if (cmd == "time") {
      // time <reps>: re-run the last job and report the mean time
      int reps; in >> reps; const ArkvaleKernel* k = arkvale_find_kernel(kname.c_str());
      std::vector<void*> args(k->paramCount); for (unsigned i = 0; i < k->paramCount; i++) args[i] = params.data() + k->paramOffsets[i];
      cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b)); CK(cudaEventRecord(a));
      for (int r = 0; r < reps; r++) CK(cudaLaunchKernel(k->fn, dim3(g[0], g[1], g[2]), dim3(k->blockThreads), args.data(), k->dynamicSharedBytes, 0));
      CK(cudaEventRecord(b)); CK(cudaEventSynchronize(b)); float ms; CK(cudaEventElapsedTime(&ms, a, b));
      printf("time %s %.3f us\n", kname.c_str(), 1000.0 * ms / reps);
    }
  }
  cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
  printf("ran %d jobs on %s\n", jobs, prop.name);
  return 0;
}
