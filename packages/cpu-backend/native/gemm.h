// Dense float32 matrix product in the Hugging Face weight layout.
#pragma once

namespace arkvale {

// out[m x n] = x[m x k] . w[n x k]^T, all row-major and contiguous; `out` is
// overwritten. Runs on the thread pool.
void matmul(const float* x, const float* w, float* out, int m, int n, int k);

}  // namespace arkvale
