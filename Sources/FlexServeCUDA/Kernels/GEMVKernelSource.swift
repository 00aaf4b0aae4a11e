/// CUDA C for a weight-streaming matrix-vector product for steps of a few tokens (decode, small trees):
/// one warp per weight row, 16-byte loads, every row read once for all the step's tokens. Opt-in
/// (`FLEXSERVE_CUDA_GEMV=1`) until it is measured against cuBLAS on a GPU.
enum GEMVKernelSource {
    static let moduleName = "flexserve_gemv"
    /// Most tokens one launch serves (accumulators per lane).
    static let maxTokens = 8

    static let code = #"""
__device__ __forceinline__ void unpack(const uint4& v, float* out, const float*) {
  out[0] = __uint_as_float(v.x); out[1] = __uint_as_float(v.y); out[2] = __uint_as_float(v.z); out[3] = __uint_as_float(v.w);
}
__device__ __forceinline__ float half_to_float(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
struct f16 { unsigned short bits; };
struct bf16 { unsigned short bits; };
__device__ __forceinline__ void unpack(const uint4& v, float* out, const f16*) {
  unsigned w[4] = {v.x, v.y, v.z, v.w};
  for (int i = 0; i < 4; i++) { out[2 * i] = half_to_float(w[i] & 0xffffu); out[2 * i + 1] = half_to_float(w[i] >> 16); }
}
__device__ __forceinline__ void unpack(const uint4& v, float* out, const bf16*) {
  unsigned w[4] = {v.x, v.y, v.z, v.w};
  for (int i = 0; i < 4; i++) { out[2 * i] = __uint_as_float(w[i] << 16); out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u); }
}

// y[t][row] = (accumulate ? y[t][row] : 0) + Σk w[row][k] · x[t][k] for t < tokens ≤ 8.
// Needs k·sizeof(T) to be a multiple of 16 (rows start 16-byte aligned). Block: 256 threads = 8 rows.
template <typename T> __device__ void gemv(const T* w, const T* x, float* y, int n, int k, int tokens, int accumulate) {
  const int per = 16 / sizeof(T);  // elements per 16-byte load
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  long row = (long)blockIdx.x * (blockDim.x >> 5) + warp;
  if (row >= n) return;
  const uint4* wr = (const uint4*)(w + row * (long)k);
  int chunks = k / per;
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int c = lane; c < chunks; c += 32) {
    float wv[8], xv[8];
    unpack(wr[c], wv, (const T*)0);
#pragma unroll
    for (int t = 0; t < 8; t++) {
      if (t < tokens) {
        unpack(((const uint4*)(x + (long)t * k))[c], xv, (const T*)0);
        float s = 0.f;
        for (int e = 0; e < per; e++) s += wv[e] * xv[e];
        acc[t] += s;
      }
    }
  }
#pragma unroll
  for (int t = 0; t < 8; t++) {
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

extern "C" __global__ void gemv_f32(const float* w, const float* x, float* y, int n, int k, int tokens, int accumulate) {
  gemv<float>(w, x, y, n, k, tokens, accumulate); }
extern "C" __global__ void gemv_f16(const f16* w, const f16* x, float* y, int n, int k, int tokens, int accumulate) {
  gemv<f16>(w, x, y, n, k, tokens, accumulate); }
extern "C" __global__ void gemv_bf16(const bf16* w, const bf16* x, float* y, int n, int k, int tokens, int accumulate) {
  gemv<bf16>(w, x, y, n, k, tokens, accumulate); }
"""#
}
