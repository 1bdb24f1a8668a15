// SGEMM C = A·B, row-major, f32. Tiled: each 16x16 workgroup computes a 64x64 block of C,
// staging 64x16 slices of A and 16x64 slices of B in shared memory per step of K; register
// blocking: each invocation accumulates a 4x4 sub-block (rows ty+16i, columns tx+16j, so
// neighbouring invocations touch neighbouring addresses in global and shared memory).
// Shared arrays are one-dimensional on purpose (explicit index arithmetic, no reliance on
// how a front end lays out multi-dimensional shared arrays).
#version 450

layout(local_size_x = 16, local_size_y = 16, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer MatA { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer MatB { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer MatC { float c[]; };

layout(push_constant) uniform Shape {
    uint M;
    uint N;
    uint K;
} p;

const uint BM = 64;
const uint BN = 64;
const uint BK = 16;
const uint TM = 4;
const uint TN = 4;
const uint THREADS = 256;

shared float tileA[BK * BM]; // tileA[kk * BM + m]
shared float tileB[BK * BN]; // tileB[kk * BN + n]

void main() {
    uint tx = gl_LocalInvocationID.x;
    uint ty = gl_LocalInvocationID.y;
    uint tid = ty * 16 + tx;
    uint row0 = gl_WorkGroupID.y * BM;
    uint col0 = gl_WorkGroupID.x * BN;

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++) {
        for (uint j = 0; j < TN; j++) {
            acc[i][j] = 0.0;
        }
    }

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        for (uint s = 0; s < (BM * BK) / THREADS; s++) {
            uint idx = tid + s * THREADS;
            uint m = idx / BK;
            uint kk = idx % BK;
            uint gr = row0 + m;
            uint gk = k0 + kk;
            tileA[kk * BM + m] = (gr < p.M && gk < p.K) ? a[gr * p.K + gk] : 0.0;
        }
        for (uint s = 0; s < (BN * BK) / THREADS; s++) {
            uint idx = tid + s * THREADS;
            uint kk = idx / BN;
            uint n = idx % BN;
            uint gk = k0 + kk;
            uint gc = col0 + n;
            tileB[kk * BN + n] = (gk < p.K && gc < p.N) ? b[gk * p.N + gc] : 0.0;
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float ar[TM];
            float br[TN];
            for (uint i = 0; i < TM; i++) {
                ar[i] = tileA[kk * BM + ty + i * 16];
            }
            for (uint j = 0; j < TN; j++) {
                br[j] = tileB[kk * BN + tx + j * 16];
            }
            for (uint i = 0; i < TM; i++) {
                for (uint j = 0; j < TN; j++) {
                    acc[i][j] += ar[i] * br[j];
                }
            }
        }
        barrier();
    }

    for (uint i = 0; i < TM; i++) {
        uint r = row0 + ty + i * 16;
        for (uint j = 0; j < TN; j++) {
            uint col = col0 + tx + j * 16;
            if (r < p.M && col < p.N) {
                c[r * p.N + col] = acc[i][j];
            }
        }
    }
}
