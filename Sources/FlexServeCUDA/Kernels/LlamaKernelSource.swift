/// CUDA C for the decoder kernels, compiled by NVRTC at run time (no headers: fp16/bf16 are
/// converted with PTX `cvt`, so no toolkit include path is needed). Each kernel exists for fp32,
/// fp16 and bf16 storage (suffix `_f32`, `_f16`, `_bf16`); arithmetic is fp32 throughout.
enum LlamaKernelSource {
    static let moduleName = "flexserve_llama"

    static let code = #"""
\#(KernelPrelude.storageTypes)

__device__ __forceinline__ float load(const float* p, long i) { return p[i]; }
__device__ __forceinline__ float load(const f16* p, long i) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i].bits)); return f;
}
__device__ __forceinline__ float load(const bf16* p, long i) { return __uint_as_float(((unsigned)p[i].bits) << 16); }
\#(KernelPrelude.stores)

// Block-wide reductions; blockDim.x is a multiple of 32. `scratch` holds 32 floats.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ float block_sum(float v, float* scratch) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}
__device__ float block_max(float v, float* scratch) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : __int_as_float(0xff800000);
  return warp_max(v);
}

// x[t] = table[ids[t]] (fp32 residual stream). Grid: tokens.
template <typename T> __device__ void embed(const int* ids, const T* table, float* x, int dim) {
  long t = blockIdx.x, row = ids[t];
  for (int i = threadIdx.x; i < dim; i += blockDim.x) x[t * dim + i] = load(table, row * dim + i);
}

// out[r] = x[rows ? rows[r] : r] / rms · w, as the CPU's Normalization.rms. Grid: output rows.
template <typename T> __device__ void rmsnorm(const float* x, const int* rows, const float* w, T* out, int dim, float eps) {
  __shared__ float scratch[32];
  long r = blockIdx.x, src = rows ? rows[r] : r;
  const float* row = x + src * dim;
  float s = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) s += row[i] * row[i];
  s = block_sum(s, scratch);
  float scale = 1.f / sqrtf(s / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) store(out, r * dim + i, row[i] * scale * w[i]);
}

// qkv rows are [q | k | v] (fp32, from one GEMM). Adds the optional bias, rotates q in place and
// k ("rotate half" pairs i, i+d/2), and writes k and v to the cache slot write[t]. Grid: tokens.
template <typename T> __device__ void rope_store(float* qkv, const float* bias, const float* cosines, const float* sines,
                                                 const int* write, T* kc, T* vc, int nh, int nkv, int hd) {
  int t = blockIdx.x, qDim = nh * hd, kvDim = nkv * hd, half = hd / 2;
  float* row = qkv + (long)t * (qDim + 2 * kvDim);
  const float* c = cosines + (long)t * half;
  const float* s = sines + (long)t * half;
  long slot = write[t];
  for (int p = threadIdx.x; p < (nh + nkv) * half; p += blockDim.x) {
    int head = p / half, i = p % half, base = head * hd;  // k heads follow q heads in the row
    float a = row[base + i], b = row[base + i + half];
    if (bias) { a += bias[base + i]; b += bias[base + i + half]; }
    float ra = a * c[i] - b * s[i], rb = b * c[i] + a * s[i];
    if (head < nh) {
      row[base + i] = ra;
      row[base + i + half] = rb;
    } else {
      long o = slot * kvDim + (base - qDim);
      store(kc, o + i, ra);
      store(kc, o + i + half, rb);
    }
  }
  for (int i = threadIdx.x; i < kvDim; i += blockDim.x) {
    float v = row[qDim + kvDim + i];
    if (bias) v += bias[qDim + kvDim + i];
    store(vc, slot * kvDim + i, v);
  }
}

// One query head of one token over the slots it may see, slots[slotStart[t]..<slotStart[t+1]]:
// that list is the tree mask, so prefill, decoding and tree verification share this kernel.
// Grid: (tokens, heads). Dynamic shared memory: (hd + max visible) floats.
template <typename T> __device__ void attention(const float* qkv, const T* kc, const T* vc, const int* slotStart,
                                                const int* slots, T* out, int nh, int nkv, int hd, float scale) {
  extern __shared__ float shared[];
  __shared__ float scratch[32];
  int t = blockIdx.x, h = blockIdx.y, kvh = h / (nh / nkv);
  int qDim = nh * hd, kvDim = nkv * hd;
  int lo = slotStart[t], n = slotStart[t + 1] - lo;
  float* q = shared;
  float* scores = shared + hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) q[i] = qkv[(long)t * (qDim + 2 * kvDim) + h * hd + i];
  __syncthreads();
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int j = warp; j < n; j += warps) {
    const T* k = kc + (long)slots[lo + j] * kvDim + kvh * hd;
    float d = 0.f;
    for (int i = lane; i < hd; i += 32) d += q[i] * load(k, i);
    d = warp_sum(d);
    if (lane == 0) scores[j] = d * scale;
  }
  __syncthreads();
  float m = __int_as_float(0xff800000);
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = block_max(m, scratch);
  float sum = 0.f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float e = expf(scores[j] - m);
    scores[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);  // its barriers also publish the exponentials
  float inv = 1.f / sum;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < n; j++) acc += scores[j] * load(vc, (long)slots[lo + j] * kvDim + kvh * hd + i);
    store(out, (long)t * qDim + h * hd + i, acc * inv);
  }
}

// 8 (fp16/bf16) or 4 (fp32) elements of a 16-byte load, as floats.
__device__ __forceinline__ void unpack16(const uint4& v, float* out, const float*) {
  out[0] = __uint_as_float(v.x); out[1] = __uint_as_float(v.y); out[2] = __uint_as_float(v.z); out[3] = __uint_as_float(v.w);
}
__device__ __forceinline__ void unpack16(const uint4& v, float* out, const f16* p) {
  const f16* h = (const f16*)&v;
#pragma unroll
  for (int i = 0; i < 8; i++) out[i] = load(h, i);
}
__device__ __forceinline__ void unpack16(const uint4& v, float* out, const bf16*) {
  unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) { out[2 * i] = __uint_as_float(w[i] << 16); out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u); }
}

// The same attention with more parallelism for long visible lists (decode is latency-bound in `attention`: one
// warp per slot, each waiting on a slot index and then its key). Here the slot indices are staged in shared
// memory once; each thread scores whole slots (16-byte key loads, q from shared memory); each warp sums the
// values of its share of the slots and the 8 warps' partial sums are added in a fixed order, so a token's result
// depends only on its visible list, as before. Grid (tokens, heads), 256 threads; needs hd % 8 == 0, hd <= 256.
// Dynamic shared memory: hd + 2 · (max visible) floats.
template <typename T> __device__ void attention2(const float* qkv, const T* kc, const T* vc, const int* slotStart,
                                                 const int* slots, T* out, int nh, int nkv, int hd, float scale) {
  extern __shared__ float shared[];
  __shared__ float scratch[32];
  __shared__ float partial[8][256];
  int t = blockIdx.x, h = blockIdx.y, kvh = h / (nh / nkv);
  int qDim = nh * hd, kvDim = nkv * hd;
  int lo = slotStart[t], n = slotStart[t + 1] - lo;
  float* q = shared;
  float* scores = shared + hd;
  int* rows = (int*)(scores + n);
  for (int i = threadIdx.x; i < hd; i += blockDim.x) q[i] = qkv[(long)t * (qDim + 2 * kvDim) + h * hd + i];
  for (int j = threadIdx.x; j < n; j += blockDim.x) rows[j] = slots[lo + j];
  __syncthreads();
  const int per = 16 / sizeof(T);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const uint4* k = (const uint4*)(kc + (long)rows[j] * kvDim + kvh * hd);
    float d = 0.f;
#pragma unroll 4
    for (int c = 0; c < hd / per; c++) {
      float kv[8];
      unpack16(k[c], kv, (const T*)0);
#pragma unroll
      for (int e = 0; e < per; e++) d += q[c * per + e] * kv[e];
    }
    scores[j] = d * scale;
  }
  __syncthreads();
  float m = __int_as_float(0xff800000);
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = block_max(m, scratch);
  float sum = 0.f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float e = expf(scores[j] - m);
    scores[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);  // its barriers also publish the exponentials
  float inv = 1.f / sum;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  float acc[8];
#pragma unroll
  for (int r = 0; r < 8; r++) acc[r] = 0.f;
#pragma unroll 2
  for (int j = warp; j < n; j += warps) {
    float p = scores[j];
    const T* v = vc + (long)rows[j] * kvDim + kvh * hd;
#pragma unroll
    for (int r = 0; r < 8; r++) if (lane + 32 * r < hd) acc[r] += p * load(v, lane + 32 * r);
  }
#pragma unroll
  for (int r = 0; r < 8; r++) if (lane + 32 * r < hd) partial[warp][lane + 32 * r] = acc[r];
  __syncthreads();
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < warps; w++) s += partial[w][i];
    store(out, (long)t * qDim + h * hd + i, s * inv);
  }
}

// RMSNorm with one 16-byte load per thread per pass (dim % 4 == 0): a 4096-wide row is one load per thread
// of a 1024-thread block, where `rmsnorm` waited on 16 dependent loads per thread. The block size is fixed per model
// (it depends on dim only), so a row's sum order does not depend on the step. Grid: output rows.
template <typename T> __device__ void rmsnorm2(const float* x, const int* rows, const float* w, T* out, int dim, float eps) {
  __shared__ float scratch[32];
  long r = blockIdx.x, src = rows ? rows[r] : r;
  const float4* row = (const float4*)(x + src * dim);
  const float4* w4 = (const float4*)w;
  int n4 = dim >> 2;
  float s = 0.f;
  for (int i = threadIdx.x; i < n4; i += blockDim.x) {
    float4 v = row[i];
    s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  s = block_sum(s, scratch);
  float scale = 1.f / sqrtf(s / dim + eps);
  for (int i = threadIdx.x; i < n4; i += blockDim.x) {
    float4 v = row[i], g = w4[i];
    long o = r * dim + 4 * i;
    store(out, o, v.x * scale * g.x);
    store(out, o + 1, v.y * scale * g.y);
    store(out, o + 2, v.z * scale * g.z);
    store(out, o + 3, v.w * scale * g.w);
  }
}

// rope_store with one thread per rotated pair (q and k heads) or per value element, across the grid:
// grid (ceil(((nh + nkv) · hd/2 + kvDim) / blockDim), tokens). Same arithmetic per element as rope_store.
template <typename T> __device__ void rope_store2(float* qkv, const float* bias, const float* cosines, const float* sines,
                                                  const int* write, T* kc, T* vc, int nh, int nkv, int hd) {
  int t = blockIdx.y, qDim = nh * hd, kvDim = nkv * hd, half = hd / 2;
  int pairs = (nh + nkv) * half;
  int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= pairs + kvDim) return;
  float* row = qkv + (long)t * (qDim + 2 * kvDim);
  long slot = write[t];
  if (p < pairs) {
    int head = p / half, i = p % half, base = head * hd;
    float c = cosines[(long)t * half + i], s = sines[(long)t * half + i];
    float a = row[base + i], b = row[base + i + half];
    if (bias) { a += bias[base + i]; b += bias[base + i + half]; }
    float ra = a * c - b * s, rb = b * c + a * s;
    if (head < nh) {
      row[base + i] = ra;
      row[base + i + half] = rb;
    } else {
      long o = slot * kvDim + (base - qDim);
      store(kc, o + i, ra);
      store(kc, o + i + half, rb);
    }
  } else {
    int i = p - pairs;
    float v = row[qDim + kvDim + i];
    if (bias) v += bias[qDim + kvDim + i];
    store(vc, slot * kvDim + i, v);
  }
}

// Split attention (flash-decoding) for steps of few tokens. A token's visible list of n slots is cut into chunks of
// C(n) consecutive list entries (a multiple of minChunk, at most 32 chunks): the chunking depends only on the token's
// own list, never on the step, so a token's result is the same in a decode step and in any verify step.
__device__ __forceinline__ int attention3_chunk(int n, int minChunk) {
  int per = max(1, (n + 31) / 32);
  return (per + minChunk - 1) / minChunk * minChunk;
}

// Part 1: block (t, h, c) scores chunk c of token t's list for query head h, and writes to part[(t·nh + h)·Z + c]
// (Z = gridDim.z, hd + 2 floats): the chunk's max score, Σ exp(score − max), and Σ exp(score − max) · v.
// 128 threads; R = hd·sizeof(T)/16 lanes per key or value row (one 16-byte load each; R a power of two ≤ 32),
// 128 / R rows at a time; the R lanes' dot products are added by a fixed shuffle tree and the row groups' value sums
// in group order. Dynamic shared memory: hd + 2 · C(max visible) floats.
template <typename T> __device__ void attention3_part(const float* qkv, const T* kc, const T* vc, const int* slotStart,
                                                      const int* slots, float* part, int nh, int nkv, int hd, float scale,
                                                      int minChunk) {
  extern __shared__ float shared[];
  __shared__ float scratch[32];
  __shared__ float vpart[1024];
  int t = blockIdx.x, h = blockIdx.y, c = blockIdx.z, kvh = h / (nh / nkv);
  int qDim = nh * hd, kvDim = nkv * hd;
  int lo = slotStart[t], n = slotStart[t + 1] - lo;
  int C = attention3_chunk(n, minChunk);
  int first = c * C;
  if (first >= n) return;
  int m = min(C, n - first);
  float* q = shared;
  float* scores = shared + hd;
  int* rows = (int*)(scores + C);
  for (int i = threadIdx.x; i < hd; i += blockDim.x) q[i] = qkv[(long)t * (qDim + 2 * kvDim) + h * hd + i];
  for (int j = threadIdx.x; j < m; j += blockDim.x) rows[j] = slots[lo + first + j];
  __syncthreads();
  const int per = 16 / sizeof(T);
  int R = hd / per, G = blockDim.x / R, g = threadIdx.x / R, r = threadIdx.x % R;
  float qr[8];
#pragma unroll
  for (int e = 0; e < per; e++) qr[e] = q[r * per + e];
#pragma unroll 4
  for (int j0 = 0; j0 < m; j0 += G) {
    int j = j0 + g;
    float d = 0.f;
    if (j < m) {
      uint4 raw = ((const uint4*)(kc + (long)rows[j] * kvDim + kvh * hd))[r];
      float kv[8];
      unpack16(raw, kv, (const T*)0);
#pragma unroll
      for (int e = 0; e < per; e++) d += qr[e] * kv[e];
    }
    for (int o = R >> 1; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
    if (j < m && r == 0) scores[j] = d * scale;
  }
  __syncthreads();
  float mx = __int_as_float(0xff800000);
  for (int j = threadIdx.x; j < m; j += blockDim.x) mx = fmaxf(mx, scores[j]);
  mx = block_max(mx, scratch);
  float sum = 0.f;
  for (int j = threadIdx.x; j < m; j += blockDim.x) {
    float e = expf(scores[j] - mx);
    scores[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);  // its barriers also publish the exponentials
  float acc[8];
#pragma unroll
  for (int e = 0; e < 8; e++) acc[e] = 0.f;
#pragma unroll 4
  for (int j = g; j < m; j += G) {
    float pj = scores[j];
    uint4 raw = ((const uint4*)(vc + (long)rows[j] * kvDim + kvh * hd))[r];
    float vv[8];
    unpack16(raw, vv, (const T*)0);
#pragma unroll
    for (int e = 0; e < per; e++) acc[e] += pj * vv[e];
  }
#pragma unroll
  for (int e = 0; e < per; e++) vpart[g * hd + r * per + e] = acc[e];
  __syncthreads();
  float* o = part + ((long)(t * nh + h) * gridDim.z + c) * (hd + 2);
  if (threadIdx.x == 0) { o[0] = mx; o[1] = sum; }
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float s = 0.f;
    for (int k = 0; k < G; k++) s += vpart[k * hd + i];
    o[2 + i] = s;
  }
}

// Part 2: block (t, h) combines token t's chunks for head h in chunk order: M = max of the chunk maxima,
// out = Σ_c w_c · acc_c / Σ_c w_c · sum_c with w_c = exp(max_c − M). Z: the stride of part (part 1's gridDim.z).
// 128 threads.
template <typename T> __device__ void attention3_combine(const int* slotStart, const float* part, T* out, int nh, int hd,
                                                         int minChunk, int Z) {
  __shared__ float weight[32];
  __shared__ float total;
  int t = blockIdx.x, h = blockIdx.y, qDim = nh * hd;
  int n = slotStart[t + 1] - slotStart[t];
  int C = attention3_chunk(n, minChunk), chunks = (n + C - 1) / C;
  const float* p = part + (long)(t * nh + h) * Z * (hd + 2);
  if (threadIdx.x < 32) {
    int c = threadIdx.x;
    float mc = c < chunks ? p[(long)c * (hd + 2)] : __int_as_float(0xff800000);
    float M = warp_max(mc);
    float w = c < chunks ? expf(mc - M) : 0.f;
    float s = c < chunks ? w * p[(long)c * (hd + 2) + 1] : 0.f;
    s = warp_sum(s);
    weight[c] = w;
    if (c == 0) total = s;
  }
  __syncthreads();
  float inv = 1.f / total;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.f;
    for (int c = 0; c < chunks; c++) acc += weight[c] * p[(long)c * (hd + 2) + 2 + i];
    store(out, (long)t * qDim + h * hd + i, acc * inv);
  }
}

// out[t][i] = silu(gate) · up, reading the fused [gate | up] GEMM rows.
template <typename T> __device__ void silu_mul(const float* gateUp, T* out, int inner, long total) {
  for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < total; e += (long)gridDim.x * blockDim.x) {
    long t = e / inner, i = e % inner;
    float g = gateUp[t * 2 * inner + i], u = gateUp[t * 2 * inner + inner + i];
    store(out, e, g / (1.f + expf(-g)) * u);
  }
}

// Applies PagedKVCache.move's (from, to) slot copies, in order, to every layer's K and V.
// cache is [planes = layers·2][slots][kvDim]; one thread per (plane, element).
template <typename T> __device__ void kv_move(T* cache, const int* moves, int count, long slots, int kvDim, int planes) {
  long e = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (e >= (long)planes * kvDim) return;
  long plane = e / kvDim, d = e % kvDim;
  T* p = cache + plane * slots * kvDim + d;
  for (int m = 0; m < count; m++) p[(long)moves[2 * m + 1] * kvDim] = p[(long)moves[2 * m] * kvDim];
}

#define INSTANTIATE(T, S) \
extern "C" __global__ void embed_##S(const int* ids, const T* table, float* x, int dim) { embed<T>(ids, table, x, dim); } \
extern "C" __global__ void rmsnorm_##S(const float* x, const int* rows, const float* w, T* out, int dim, float eps) { \
  rmsnorm<T>(x, rows, w, out, dim, eps); } \
extern "C" __global__ void rope_store_##S(float* qkv, const float* bias, const float* c, const float* s, const int* write, \
                                          T* kc, T* vc, int nh, int nkv, int hd) { \
  rope_store<T>(qkv, bias, c, s, write, kc, vc, nh, nkv, hd); } \
extern "C" __global__ void attention_##S(const float* qkv, const T* kc, const T* vc, const int* slotStart, const int* slots, \
                                         T* out, int nh, int nkv, int hd, float scale) { \
  attention<T>(qkv, kc, vc, slotStart, slots, out, nh, nkv, hd, scale); } \
extern "C" __global__ void __launch_bounds__(256) attention2_##S(const float* qkv, const T* kc, const T* vc, const int* slotStart, \
                                                                 const int* slots, T* out, int nh, int nkv, int hd, float scale) { \
  attention2<T>(qkv, kc, vc, slotStart, slots, out, nh, nkv, hd, scale); } \
extern "C" __global__ void rmsnorm2_##S(const float* x, const int* rows, const float* w, T* out, int dim, float eps) { \
  rmsnorm2<T>(x, rows, w, out, dim, eps); } \
extern "C" __global__ void rope_store2_##S(float* qkv, const float* bias, const float* c, const float* s, const int* write, \
                                           T* kc, T* vc, int nh, int nkv, int hd) { \
  rope_store2<T>(qkv, bias, c, s, write, kc, vc, nh, nkv, hd); } \
extern "C" __global__ void __launch_bounds__(128) attention3_part_##S(const float* qkv, const T* kc, const T* vc, \
    const int* slotStart, const int* slots, float* part, int nh, int nkv, int hd, float scale, int minChunk) { \
  attention3_part<T>(qkv, kc, vc, slotStart, slots, part, nh, nkv, hd, scale, minChunk); } \
extern "C" __global__ void __launch_bounds__(128) attention3_combine_##S(const int* slotStart, const float* part, T* out, \
    int nh, int hd, int minChunk, int Z) { \
  attention3_combine<T>(slotStart, part, out, nh, hd, minChunk, Z); } \
extern "C" __global__ void silu_mul_##S(const float* gateUp, T* out, int inner, long total) { silu_mul<T>(gateUp, out, inner, total); } \
extern "C" __global__ void kv_move_##S(T* cache, const int* moves, int count, long slots, int kvDim, int planes) { \
  kv_move<T>(cache, moves, count, slots, kvDim, planes); }

INSTANTIATE(float, f32)
INSTANTIATE(f16, f16)
INSTANTIATE(bf16, bf16)

"""#
}
