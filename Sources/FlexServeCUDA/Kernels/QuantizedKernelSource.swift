/// CUDA C for weights in FlexFlow-style asymmetric groups of 32 (`DeviceMatrix` layout: quantized values, then
/// one (scale, minimum) fp32 pair per group; value = q · scale + minimum):
///
/// - `qgemv_<bits>_<type>_<tokens>`: the product of steps of a few tokens, dequantizing inside the kernel: each
///   lane streams 16-byte chunks of a row (16 int8 or 32 int4 values) and their group's pair, so only the packed
///   bytes cross the memory bus. Launch as the w8 GEMV (`GEMVKernelSource`): 8 warps per row, a row's chunks dealt
///   out to them in turn, partial sums added in warp order; the order depends on k only, so it is batch-invariant.
///   q → float without an integer conversion (`0x4B000000 | q` is the float 2^23 + q), since Hopper converts
///   integers at a quarter of its FMA rate. Launch variants (`FLEXSERVE_CUDA_QGEMV`, `qgemv_w<W>u<U>_...`): W warps
///   per row, U loads in flight per lane; `w1u4` (one warp per row, 8 rows a block) is the default: fastest of the four
///   on every 7B shape at 1 token on the H200 (bench/gpu/results/issue7-run2/qgemv.json).
/// - `dequant_<bits>_<type>`: a matrix into a dense scratch in the activation type, for cuBLAS on large steps.
enum QuantizedKernelSource {
    static let moduleName = "flexserve_quantized"
    static let tokenVariants = [1, 2, 4, 8]

    static let code = #"""
\#(KernelPrelude.storageTypes)
\#(KernelPrelude.weightUnpacking)
\#(KernelPrelude.stores)
\#(KernelPrelude.streamingLoad)
__device__ __forceinline__ float2 load_pair(const float2* p) {
  float2 v;
  asm("ld.global.nc.L1::no_allocate.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "l"(p));
  return v;
}
__device__ __forceinline__ uint4 load_shared_read(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
// 2^23 + q as a float, minus 2^23: q exactly, without an integer conversion.
__device__ __forceinline__ float q_value(unsigned q) { return __uint_as_float(0x4B000000u | q) - 8388608.f; }

// The 16-byte chunk's values: 16 (int8: value j is byte j) or 32 (int4: value j < 16 is byte j's low nibble,
// value j + 16 its high nibble), dequantized with the group's (scale, minimum).
template <int BITS> __device__ __forceinline__ void dequant_chunk(const uint4& raw, float2 g, float* w) {
  unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
  if (BITS == 8) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
      for (int j = 0; j < 4; j++) w[4 * i + j] = fmaf(q_value((words[i] >> (8 * j)) & 0xffu), g.x, g.y);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        w[4 * i + j] = fmaf(q_value((words[i] >> (8 * j)) & 0xfu), g.x, g.y);
        w[16 + 4 * i + j] = fmaf(q_value((words[i] >> (8 * j + 4)) & 0xfu), g.x, g.y);
      }
    }
  }
}

// acc[t] += Σ over the chunk's values of w · x[t] (x in the activation type T).
template <typename T, int BITS, int TOK> __device__ __forceinline__ void qdot_chunk(const uint4& raw, float2 g, const T* x, int k,
                                                                                   long first, int tokens, float* acc) {
  const int V = 128 / BITS;           // values in the chunk
  const int per = 16 / sizeof(T);     // activations per 16-byte load
  float w[V];
  dequant_chunk<BITS>(raw, g, w);
#pragma unroll
  for (int t = 0; t < TOK; t++) {
    if (t < tokens) {
      const uint4* xr = (const uint4*)(x + (long)t * k + first);
      float s = 0.f;
#pragma unroll
      for (int c = 0; c < V / per; c++) {
        float xv[per > 8 ? 8 : per];
        unpack(load_shared_read(xr + c), xv, (const T*)0);
#pragma unroll
        for (int e = 0; e < per; e++) s += w[c * per + e] * xv[e];
      }
      acc[t] += s;
    }
  }
}

// y[t][row] (+)= Σk dequant(w)[row][k] · x[t][k]. Block: 256 threads, 8 / WPR rows of WPR warps each.
template <typename T, int BITS, int TOK, int WPR, int U> __device__ void qgemv(const unsigned char* q, const float2* sm, const T* x,
                                                                             float* y, int n, int k, int tokens, int accumulate) {
  const int V = 128 / BITS;
  __shared__ float partial[8][TOK];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = warp % WPR;
  long row = (long)blockIdx.x * (8 / WPR) + warp / WPR;
  bool live = row < n;
  float acc[TOK];
#pragma unroll
  for (int t = 0; t < TOK; t++) acc[t] = 0.f;
  if (live) {
    const uint4* qr = (const uint4*)(q + row * (long)k * BITS / 8);
    const float2* gr = sm + row * (long)(k / 32);
    int chunks = k / V;
    const int step = 32 * WPR;
    int c = lane + 32 * sub;
    for (; c + step * (U - 1) < chunks; c += step * U) {
      uint4 wv[U];
      float2 g[U];
#pragma unroll
      for (int u = 0; u < U; u++) { wv[u] = load_stream(qr + c + step * u); g[u] = load_pair(gr + (c + step * u) * V / 32); }
#pragma unroll
      for (int u = 0; u < U; u++) qdot_chunk<T, BITS, TOK>(wv[u], g[u], x, k, (long)(c + step * u) * V, tokens, acc);
    }
    for (; c < chunks; c += step) qdot_chunk<T, BITS, TOK>(load_stream(qr + c), load_pair(gr + c * V / 32), x, k, (long)c * V, tokens, acc);
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

// qgemv_w<WPR>u<U>_<bits>_<type>_<tokens>: WPR warps per row (8 / WPR rows a block), U loads in flight per lane.
#define QGEMV(T, S, B, N, W, U) \
extern "C" __global__ void __launch_bounds__(256) qgemv_w##W##u##U##_##B##_##S##_##N(const unsigned char* q, const float2* sm, \
    const T* x, float* y, int n, int k, int tokens, int accumulate) { \
  qgemv<T, B, N, W, U>(q, sm, x, y, n, k, tokens, accumulate); }
#define QGEMV_TOK(T, S, B, W, U) QGEMV(T, S, B, 1, W, U) QGEMV(T, S, B, 2, W, U) QGEMV(T, S, B, 4, W, U) QGEMV(T, S, B, 8, W, U)
#define QGEMV_ALL(W, U) QGEMV_TOK(float, f32, 8, W, U) QGEMV_TOK(f16, f16, 8, W, U) QGEMV_TOK(bf16, bf16, 8, W, U) \
                        QGEMV_TOK(float, f32, 4, W, U) QGEMV_TOK(f16, f16, 4, W, U) QGEMV_TOK(bf16, bf16, 4, W, U)
QGEMV_ALL(8, 2)
QGEMV_ALL(4, 2)
QGEMV_ALL(2, 4)
QGEMV_ALL(1, 4)

// Single-token variant `qgemv_s1_<bits>_<type>` (decode steps): the block first converts x to fp32 in shared memory,
// laid out so that a lane's 4-value quad of its chunk sits next to the neighbouring lanes' quads (16-byte reads
// without bank conflicts), with each chunk's sum of x; then Σ (q·d + m)·x = d·Σ q·x + m·Σ x, so a value costs a
// byte permute (q as the float 2^23 + q), one subtraction and one FMA: x is converted once per block of 8 rows
// instead of once per row, and the minimum leaves the inner loop. One warp per row, 8 rows a block, 4 chunks in flight.
template <int BITS> __device__ __forceinline__ float qdot_staged(const uint4& raw, const float4* xs4, int chunks, int c) {
  unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (BITS == 8) {
      float4 xv = xs4[i * chunks + c];
      s = fmaf(__uint_as_float(__byte_perm(words[i], 0x4Bu, 0x4550)) - 8388608.f, xv.x, s);
      s = fmaf(__uint_as_float(__byte_perm(words[i], 0x4Bu, 0x4551)) - 8388608.f, xv.y, s);
      s = fmaf(__uint_as_float(__byte_perm(words[i], 0x4Bu, 0x4552)) - 8388608.f, xv.z, s);
      s = fmaf(__uint_as_float(__byte_perm(words[i], 0x4Bu, 0x4553)) - 8388608.f, xv.w, s);
    } else {
      unsigned lo = words[i] & 0x0F0F0F0Fu, hi = (words[i] >> 4) & 0x0F0F0F0Fu;
      float4 xl = xs4[i * chunks + c], xh = xs4[(4 + i) * chunks + c];
      s = fmaf(__uint_as_float(__byte_perm(lo, 0x4Bu, 0x4550)) - 8388608.f, xl.x, s);
      s = fmaf(__uint_as_float(__byte_perm(lo, 0x4Bu, 0x4551)) - 8388608.f, xl.y, s);
      s = fmaf(__uint_as_float(__byte_perm(lo, 0x4Bu, 0x4552)) - 8388608.f, xl.z, s);
      s = fmaf(__uint_as_float(__byte_perm(lo, 0x4Bu, 0x4553)) - 8388608.f, xl.w, s);
      s = fmaf(__uint_as_float(__byte_perm(hi, 0x4Bu, 0x4550)) - 8388608.f, xh.x, s);
      s = fmaf(__uint_as_float(__byte_perm(hi, 0x4Bu, 0x4551)) - 8388608.f, xh.y, s);
      s = fmaf(__uint_as_float(__byte_perm(hi, 0x4Bu, 0x4552)) - 8388608.f, xh.z, s);
      s = fmaf(__uint_as_float(__byte_perm(hi, 0x4Bu, 0x4553)) - 8388608.f, xh.w, s);
    }
  }
  return s;
}

template <typename T, int BITS> __device__ void qgemv_staged(const unsigned char* q, const float2* sm, const T* x, float* y,
                                                             int n, int k, int accumulate) {
  extern __shared__ float4 xs4[];  // [V/4][chunks] quads, then chunks sums
  const int V = 128 / BITS, per = 16 / sizeof(T), U = 4;
  int chunks = k / V;
  float* sums = (float*)(xs4 + (V / 4) * chunks);
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    float v[V];
#pragma unroll
    for (int i = 0; i < V / per; i++) unpack(load_shared_read((const uint4*)(x + (long)c * V) + i), v + i * per, (const T*)0);
    float total = 0.f;
#pragma unroll
    for (int e = 0; e < V; e++) total += v[e];
#pragma unroll
    for (int d = 0; d < V / 4; d++) xs4[d * chunks + c] = make_float4(v[4 * d], v[4 * d + 1], v[4 * d + 2], v[4 * d + 3]);
    sums[c] = total;
  }
  __syncthreads();
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  long row = (long)blockIdx.x * 8 + warp;
  if (row >= n) return;
  const uint4* qr = (const uint4*)(q + row * (long)k * BITS / 8);
  const float2* gr = sm + row * (long)(k / 32);
  float acc = 0.f;
  int c = lane;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 wv[U];
    float2 g[U];
#pragma unroll
    for (int u = 0; u < U; u++) { wv[u] = load_stream(qr + c + 32 * u); g[u] = load_pair(gr + (c + 32 * u) * V / 32); }
#pragma unroll
    for (int u = 0; u < U; u++) {
      int cc = c + 32 * u;
      acc += g[u].x * qdot_staged<BITS>(wv[u], xs4, chunks, cc) + g[u].y * sums[cc];
    }
  }
  for (; c < chunks; c += 32) {
    float2 g = load_pair(gr + c * V / 32);
    acc += g.x * qdot_staged<BITS>(load_stream(qr + c), xs4, chunks, c) + g.y * sums[c];
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[row] = accumulate ? y[row] + acc : acc;
}
#define QGEMV_STAGED(T, S, B) \
extern "C" __global__ void __launch_bounds__(256) qgemv_s1_##B##_##S(const unsigned char* q, const float2* sm, const T* x, float* y, \
                                                                   int n, int k, int accumulate) { \
  qgemv_staged<T, B>(q, sm, x, y, n, k, accumulate); }
QGEMV_STAGED(float, f32, 8) QGEMV_STAGED(f16, f16, 8) QGEMV_STAGED(bf16, bf16, 8)
QGEMV_STAGED(float, f32, 4) QGEMV_STAGED(f16, f16, 4) QGEMV_STAGED(bf16, bf16, 4)

// out (rows × k, activation type) = the dequantized matrix. One thread per 16-byte chunk (chunks never straddle
// rows: k is a multiple of 32).
__device__ __forceinline__ unsigned pack2(float a, float b, const float*) { return 0; }
__device__ __forceinline__ unsigned pack2(float a, float b, const f16*) {
  unsigned short x, y; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(x) : "f"(a)); asm("cvt.rn.f16.f32 %0, %1;" : "=h"(y) : "f"(b));
  return (unsigned)x | ((unsigned)y << 16);
}
__device__ __forceinline__ unsigned pack2(float a, float b, const bf16*) {
  unsigned short x, y; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(x) : "f"(a)); asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(y) : "f"(b));
  return (unsigned)x | ((unsigned)y << 16);
}
// 16-byte stores (a chunk's 16 or 32 values are 32-128 contiguous output bytes): 2-byte stores cost a partial
// sector each and made this pass 10x slower than its bytes.
template <typename T, int BITS> __device__ void dequant(const unsigned char* q, const float2* sm, T* out, long chunks) {
  const int V = 128 / BITS;
  long c = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= chunks) return;
  float w[V];
  dequant_chunk<BITS>(load_stream((const uint4*)q + c), load_pair(sm + c * V / 32), w);
  uint4* o = (uint4*)(out + c * V);
  if (sizeof(T) == 4) {
#pragma unroll
    for (int j = 0; j < V / 4; j++) o[j] = make_uint4(__float_as_uint(w[4 * j]), __float_as_uint(w[4 * j + 1]),
                                                      __float_as_uint(w[4 * j + 2]), __float_as_uint(w[4 * j + 3]));
  } else {
#pragma unroll
    for (int j = 0; j < V / 8; j++) o[j] = make_uint4(pack2(w[8 * j], w[8 * j + 1], (const T*)0), pack2(w[8 * j + 2], w[8 * j + 3], (const T*)0),
                                                      pack2(w[8 * j + 4], w[8 * j + 5], (const T*)0), pack2(w[8 * j + 6], w[8 * j + 7], (const T*)0));
  }
}
#define DEQUANT(T, S, B) \
extern "C" __global__ void dequant_##B##_##S(const unsigned char* q, const float2* sm, T* out, long chunks) { dequant<T, B>(q, sm, out, chunks); }
DEQUANT(float, f32, 8) DEQUANT(f16, f16, 8) DEQUANT(bf16, bf16, 8)
DEQUANT(float, f32, 4) DEQUANT(f16, f16, 4) DEQUANT(bf16, bf16, 4)
"""#
}
