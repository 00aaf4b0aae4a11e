/// CUDA C for sampling a token from a logits row on the GPU, with the CPU `Sampler`'s definition: temperature,
/// then top-k (the k largest logits, ties to the lower id), then top-p (the shortest prefix by descending
/// probability whose mass reaches p), then the token where the cumulative mass in that order passes u · mass,
/// u uniform in [0, 1) drawn on the host from the request's seeded generator (so seeds mean what they mean on
/// the CPU); greedy rows take the first largest logit, as `Sampler.argmax`.
///
/// No sort: every "k-th in order" question is a radix select over a 56-bit order key (the logit's 32 bits made
/// monotone, then the complement of the 24-bit id, so the order is descending logit, ascending id, with no ties),
/// eight bits a pass, with a 256-bin histogram in shared memory of either counts or masses. Masses are fixed point
/// (probability · 2^40 relative to the row's largest, summed as 64-bit integers), so every sum is exact and the
/// result does not depend on the order threads add in: the same row and u give the same token on every run.
/// Greedy rows take one pass (a block argmax). One 1024-thread block per sampled row; a row's parameters come from `params` (6 words per block).
enum SamplerKernelSource {
    static let moduleName = "flexserve_sampler"

    static let code = #"""
typedef unsigned long long u64;
#define ONE_MASS 1099511627776.0f  /* 2^40 */

__device__ __forceinline__ u64 order_key(float v, int i) {
  unsigned b = __float_as_uint(v);
  unsigned k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  if (v != v) k = 0;  // NaN: last, as the CPU's comparisons skip it
  return ((u64)k << 24) | (u64)(0xFFFFFFu - (unsigned)i);
}
__device__ __forceinline__ u64 mass_of(float v, float maxv, float invT) {
  float p = expf((v - maxv) * invT);  // as the CPU: exp((logit - max) / temperature)
  return (p == p) ? (u64)(p * ONE_MASS) : 0ull;
}

struct SelectResult { u64 key; u64 before; };

// The element e (in descending key order) with before(e) <= target < before(e) + w(e), where w is 1 or the mass,
// and before(e) the weight of the elements ahead of it. Needs target < total weight. All threads call it.
// Each pass histograms one more byte of the key among the elements that share the bytes chosen so far; lanes of a
// warp that fall in one bin add once (match + reduce), since most logits share their first byte (sign and
// exponent) and one shared-memory address would otherwise take thousands of atomics. Once the chosen bin holds a
// single element, one more pass finds it instead of the remaining bytes.
template <bool MASS> __device__ SelectResult select_rank(const float* row, int V, float maxv, float invT, u64 target) {
  __shared__ u64 bins[256];
  __shared__ unsigned counts[256];
  __shared__ u64 s_prefix, s_target, s_before;
  __shared__ int s_done, s_shift;
  u64 prefix = 0, before = 0;
  int lane = threadIdx.x & 31;
  int rounds = (V + blockDim.x - 1) / blockDim.x;
  for (int pass = 0; pass < 7; pass++) {
    int shift = 48 - 8 * pass;
    for (int i = threadIdx.x; i < 256; i += blockDim.x) { bins[i] = 0; counts[i] = 0; }
    __syncthreads();
    for (int r = 0; r < rounds; r++) {
      int i = r * blockDim.x + threadIdx.x;
      unsigned digit = 256u;  // none
      u64 w = 0;
      if (i < V) {
        float v = row[i];
        u64 key = order_key(v, i);
        if (pass == 0 || (key >> (shift + 8)) == prefix) {
          w = MASS ? mass_of(v, maxv, invT) : 1ull;
          if (w) digit = (unsigned)((key >> shift) & 255);
        }
      }
      unsigned peers = __match_any_sync(0xffffffffu, digit);
      if (digit < 256u) {
        // w < 2^41: three 16-bit limbs, each summed over the peers without overflow.
        u64 sum = MASS ? ((u64)__reduce_add_sync(peers, (unsigned)(w & 0xffffu))
                          + ((u64)__reduce_add_sync(peers, (unsigned)((w >> 16) & 0xffffu)) << 16)
                          + ((u64)__reduce_add_sync(peers, (unsigned)(w >> 32)) << 32))
                       : (u64)__popc(peers);
        if (lane == __ffs(peers) - 1) {
          atomicAdd(&bins[digit], sum);
          atomicAdd(&counts[digit], (unsigned)__popc(peers));
        }
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 acc = 0;
      int d = 255;
      for (; d > 0; d--) {
        if (acc + bins[d] > target) break;
        acc += bins[d];
      }
      s_target = target - acc;
      s_before = before + acc;
      s_prefix = (prefix << 8) | (u64)d;
      s_done = counts[d] == 1;
      s_shift = shift;
    }
    __syncthreads();
    target = s_target;
    before = s_before;
    prefix = s_prefix;
    int done = s_done, doneShift = s_shift;
    __syncthreads();
    if (done && pass < 6) {
      // One element left in the chosen bin: find its full key.
      for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = row[i];
        u64 key = order_key(v, i);
        if ((key >> doneShift) == prefix && (MASS ? mass_of(v, maxv, invT) : 1ull)) s_prefix = key;
      }
      __syncthreads();
      prefix = s_prefix;
      __syncthreads();
      break;
    }
  }
  SelectResult r; r.key = prefix; r.before = before;
  return r;
}

// The first largest logit (lowest id among equals), as Sampler.argmax: one pass and a block reduction.
__device__ int block_argmax(const float* row, int V) {
  __shared__ float sv[32];
  __shared__ int si[32];
  float best = __int_as_float(0xff800000);
  int at = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    float v = row[i];
    if (v > best) { best = v; at = i; }  // NaN never wins; a thread's ids rise, so ties keep the first
  }
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, best, o);
    int oi = __shfl_xor_sync(0xffffffffu, at, o);
    if (ov > best || (ov == best && oi < at)) { best = ov; at = oi; }
  }
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) { sv[warp] = best; si[warp] = at; }
  __syncthreads();
  if (warp == 0) {
    best = lane < (blockDim.x >> 5) ? sv[lane] : __int_as_float(0xff800000);
    at = lane < (blockDim.x >> 5) ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, o);
      int oi = __shfl_xor_sync(0xffffffffu, at, o);
      if (ov > best || (ov == best && oi < at)) { best = ov; at = oi; }
    }
  }
  return at == 0x7fffffff ? 0 : at;  // valid in thread 0
}

__device__ __forceinline__ int key_index(u64 key) { return (int)(0xFFFFFFu - (unsigned)(key & 0xFFFFFFull)); }

__device__ float block_max(float v) {
  __shared__ float s[32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) s[warp] = v;
  __syncthreads();
  v = lane < (blockDim.x >> 5) ? s[lane] : __int_as_float(0xff800000);
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  return v;
}

// params per block: row, topK (0: off), greedy (1/0), bits of u, bits of 1/temperature, bits of topP.
extern "C" __global__ void __launch_bounds__(1024) sample_rows(const float* logits, const int* params, int* out, int V) {
  const int* p = params + 6 * blockIdx.x;
  const float* row = logits + (long)p[0] * V;
  int topK = p[1], greedy = p[2];
  float u = __int_as_float(p[3]), invT = __int_as_float(p[4]), topP = __int_as_float(p[5]);
  if (greedy) {
    int best = block_argmax(row, V);
    if (threadIdx.x == 0) out[blockIdx.x] = best;
    return;
  }
  float m = __int_as_float(0xff800000);
  for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, row[i]);  // fmaxf skips NaN
  float maxv = block_max(m);
  // top-k: the candidates are the elements at or above the k-th in order.
  u64 lowest = 0;
  if (topK > 0 && topK < V) lowest = select_rank<false>(row, V, maxv, invT, (u64)(topK - 1)).key;
  __shared__ u64 s_total;
  if (threadIdx.x == 0) s_total = 0;
  __syncthreads();
  u64 mine = 0;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    float v = row[i];
    if (order_key(v, i) >= lowest) mine += mass_of(v, maxv, invT);
  }
  atomicAdd(&s_total, mine);
  __syncthreads();
  u64 total = s_total;
  // top-p: keep an element while the mass ahead of it is below p · total; the last kept is the one whose span
  // holds ceil(p · total) - 1.
  if (topP < 1.f) {
    double bound = ceil((double)topP * (double)total);
    u64 limit = bound < 1.0 ? 1ull : (u64)bound;
    if (limit - 1 < total) {
      SelectResult last = select_rank<true>(row, V, maxv, invT, limit - 1);
      total = last.before + mass_of(row[key_index(last.key)], maxv, invT);
    }
  }
  u64 target = (u64)((double)u * (double)total);
  if (target >= total) target = total > 0 ? total - 1 : 0;
  SelectResult pick = select_rank<true>(row, V, maxv, invT, target);
  if (threadIdx.x == 0) out[blockIdx.x] = key_index(pick.key);
}
"""#
}
