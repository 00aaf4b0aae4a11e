/// CUDA C that several kernel modules share. NVRTC compiles each module alone, so each module's source
/// interpolates the pieces it uses.
enum KernelPrelude {
    /// The 16-bit storage types, as raw bits.
    static let storageTypes = #"""
struct f16 { unsigned short bits; };
struct bf16 { unsigned short bits; };
"""#

    /// Sixteen bytes of weights (4 fp32, 8 fp16 or 8 bf16 values) as floats.
    static let weightUnpacking = #"""
__device__ __forceinline__ float half_to_float(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ void unpack(const uint4& v, float* out, const float*) {
  out[0] = __uint_as_float(v.x); out[1] = __uint_as_float(v.y); out[2] = __uint_as_float(v.z); out[3] = __uint_as_float(v.w);
}
__device__ __forceinline__ void unpack(const uint4& v, float* out, const f16*) {
  unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) { out[2 * i] = half_to_float(w[i] & 0xffffu); out[2 * i + 1] = half_to_float(w[i] >> 16); }
}
__device__ __forceinline__ void unpack(const uint4& v, float* out, const bf16*) {
  unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) { out[2 * i] = __uint_as_float(w[i] << 16); out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u); }
}
"""#

    /// Rounding a float into each storage type.
    static let stores = #"""
__device__ __forceinline__ void store(float* p, long i, float v) { p[i] = v; }
__device__ __forceinline__ void store(f16* p, long i, float v) {
  unsigned short b; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(v)); p[i].bits = b;
}
__device__ __forceinline__ void store(bf16* p, long i, float v) {
  unsigned short b; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(v)); p[i].bits = b;
}
"""#

    static let streamingLoad = #"""
// Weights: read once, through the non-coherent path, not kept in L1.
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
"""#
}
