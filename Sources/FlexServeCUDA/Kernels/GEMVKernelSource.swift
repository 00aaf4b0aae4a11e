/// CUDA C for a weight-streaming matrix-vector product for steps of a few tokens (decode, small trees):
/// one warp per weight row, 16-byte loads, every row read once for all of a launch's tokens. The default for
/// steps of ≤ 8 tokens since 2026-12-02, in launch variant w4 (`FLEXSERVE_CUDA_GEMV=0`: cuBLAS instead).
///
/// For Hopper's bandwidth each lane keeps four independent 16-byte weight loads in flight (one load at a
/// time leaves the memory system mostly idle at batch 1), and weights bypass L1 (`L1::no_allocate`: each is
/// read once) so the activations the block's 8 warps share stay there.
///
/// Every token's sum is formed in the same order whatever the launch's token count (per lane: chunks in
/// increasing order; then the same warp reduction), so one token's result does not depend on the batch:
/// a tree verification reproduces incremental decoding bit for bit when both take this kernel.
enum GEMVKernelSource {
    static let moduleName = "flexserve_gemv"
    /// Token counts with a kernel of their own (accumulators per lane); larger steps run in chunks of the largest.
    static let tokenVariants = [1, 2, 4, 8]
    static var maxTokens: Int { tokenVariants.last! }

    static let code = #"""
\#(KernelPrelude.storageTypes)
\#(KernelPrelude.weightUnpacking)
\#(KernelPrelude.streamingLoad)
// Activations: read by every warp of the block, kept in L1.
__device__ __forceinline__ uint4 load_shared_read(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

template <typename T, int TOK> __device__ __forceinline__ void dot_chunk(const uint4& wraw, const T* x, int k, int c, int tokens, float* acc) {
  const int per = 16 / sizeof(T);
  float wv[8];
  unpack(wraw, wv, (const T*)0);
#pragma unroll
  for (int t = 0; t < TOK; t++) {
    if (t < tokens) {
      float xv[8];
      unpack(load_shared_read((const uint4*)(x + (long)t * k) + c), xv, (const T*)0);
      float s = 0.f;
#pragma unroll
      for (int e = 0; e < per; e++) s += wv[e] * xv[e];
      acc[t] += s;
    }
  }
}

// y[t][row] = (accumulate ? y[t][row] : 0) + Σk w[row][k] · x[t][k] for t < tokens ≤ TOK.
// Needs k·sizeof(T) to be a multiple of 16 (rows start 16-byte aligned). Block: 256 threads = 8 rows.
template <typename T, int TOK> __device__ void gemv(const T* w, const T* x, float* y, int n, int k, int tokens, int accumulate) {
  const int per = 16 / sizeof(T);  // elements per 16-byte load
  const int U = 4;                 // loads in flight per lane
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  long row = (long)blockIdx.x * (blockDim.x >> 5) + warp;
  if (row >= n) return;
  const uint4* wr = (const uint4*)(w + row * (long)k);
  int chunks = k / per;
  float acc[TOK];
#pragma unroll
  for (int t = 0; t < TOK; t++) acc[t] = 0.f;
  int c = lane;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) wv[u] = load_stream(wr + c + 32 * u);
#pragma unroll
    for (int u = 0; u < U; u++) dot_chunk<T, TOK>(wv[u], x, k, c + 32 * u, tokens, acc);
  }
  for (; c < chunks; c += 32) dot_chunk<T, TOK>(load_stream(wr + c), x, k, c, tokens, acc);
#pragma unroll
  for (int t = 0; t < TOK; t++) {
    if (t < tokens) {
      float s = acc[t];
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane == 0) {
        long i = (long)t * n + row;
        y[i] = accumulate ? y[i] + s : s;
      }
    }
  }
}

#define GEMV(T, S, N) \
extern "C" __global__ void __launch_bounds__(256) gemv_##S##_##N(const T* w, const T* x, float* y, int n, int k, int tokens, int accumulate) { \
  gemv<T, N>(w, x, y, n, k, tokens, accumulate); }
#define GEMV_ALL(T, S) GEMV(T, S, 1) GEMV(T, S, 2) GEMV(T, S, 4) GEMV(T, S, 8)
GEMV_ALL(float, f32)
GEMV_ALL(f16, f16)
GEMV_ALL(bf16, bf16)

// Variants for tuning (FLEXSERVE_CUDA_GEMV_VARIANT; `gpu-check profile` times them all): U loads in flight per
// lane, WPR warps per row (a block of 256 threads holds 8 / WPR rows). With WPR > 1 a row's chunks are dealt
// out to its warps in turn (warp w takes chunks lane + 32·(w + WPR·j)); each warp reduces its lanes, and the
// row's first warp adds the WPR partial sums in warp order. The order depends only on k and the variant, never on
// the token count, so each variant stays batch-invariant (variants differ from each other in rounding).
template <typename T, int TOK, int U, int WPR> __device__ void gemvx(const T* w, const T* x, float* y, int n, int k, int tokens, int accumulate) {
  const int per = 16 / sizeof(T);
  __shared__ float partial[8][TOK];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int sub = warp % WPR;
  long row = (long)blockIdx.x * (8 / WPR) + warp / WPR;
  bool live = row < n;
  float acc[TOK];
#pragma unroll
  for (int t = 0; t < TOK; t++) acc[t] = 0.f;
  if (live) {
    const uint4* wr = (const uint4*)(w + row * (long)k);
    int chunks = k / per;
    const int step = 32 * WPR;
    int c = lane + 32 * sub;
    for (; c + step * (U - 1) < chunks; c += step * U) {
      uint4 wv[U];
#pragma unroll
      for (int u = 0; u < U; u++) wv[u] = load_stream(wr + c + step * u);
#pragma unroll
      for (int u = 0; u < U; u++) dot_chunk<T, TOK>(wv[u], x, k, c + step * u, tokens, acc);
    }
    for (; c < chunks; c += step) dot_chunk<T, TOK>(load_stream(wr + c), x, k, c, tokens, acc);
  }
#pragma unroll
  for (int t = 0; t < TOK; t++) {
    float s = acc[t];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    acc[t] = s;
  }
  if (WPR == 1) {
    if (live && lane == 0) {
#pragma unroll
      for (int t = 0; t < TOK; t++) {
        if (t < tokens) { long i = (long)t * n + row; y[i] = accumulate ? y[i] + acc[t] : acc[t]; }
      }
    }
    return;
  }
  if (lane == 0) {
#pragma unroll
    for (int t = 0; t < TOK; t++) partial[warp][t] = acc[t];
  }
  __syncthreads();
  if (live && sub == 0 && lane == 0) {
#pragma unroll
    for (int t = 0; t < TOK; t++) {
      if (t < tokens) {
        float s = partial[warp][t];
        for (int j = 1; j < WPR; j++) s += partial[warp + j][t];
        long i = (long)t * n + row;
        y[i] = accumulate ? y[i] + s : s;
      }
    }
  }
}

#define GEMVX(T, S, N, U, WPR) \
extern "C" __global__ void __launch_bounds__(256) gemv_u##U##w##WPR##_##S##_##N(const T* w, const T* x, float* y, int n, int k, int tokens, int accumulate) { \
  gemvx<T, N, U, WPR>(w, x, y, n, k, tokens, accumulate); }
#define GEMVX_TOK(T, S, U, WPR) GEMVX(T, S, 1, U, WPR) GEMVX(T, S, 2, U, WPR) GEMVX(T, S, 4, U, WPR) GEMVX(T, S, 8, U, WPR)
#define GEMVX_ALL(U, WPR) GEMVX_TOK(float, f32, U, WPR) GEMVX_TOK(f16, f16, U, WPR) GEMVX_TOK(bf16, bf16, U, WPR)
GEMVX_ALL(8, 1)
GEMVX_ALL(4, 2)
GEMVX_ALL(4, 4)
GEMVX_ALL(2, 8)
"""#

    /// Launch configurations besides the default (`gemv_<type>_<tokens>`, 8 rows a block, 4 loads in flight):
    /// name → (loads in flight per lane, warps per row). Kernels are `gemv_u<U>w<W>_<type>_<tokens>`.
    static let tuningVariants: [(name: String, loads: Int, warpsPerRow: Int)] = [
        ("u8", 8, 1), ("w2", 4, 2), ("w4", 4, 4), ("w8", 2, 8),
    ]
}
