// In place: x[r][c] = act(x[r][c] + bias[c]) over a rows x cols row-major matrix.
// act: 0 identity, 1 ReLU, 2 GELU (tanh approximation, as the CPU backend's `gelu`).
// Grid-stride loop, so any size fits in the dispatch limits.
#version 450

layout(local_size_x = 256) in;

layout(std430, set = 0, binding = 0) buffer Values { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Bias { float bias[]; };

layout(push_constant) uniform Params {
    uint rows;
    uint cols;
    uint act;
} p;

void main() {
    uint total = p.rows * p.cols;
    uint stride = gl_NumWorkGroups.x * 256;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += stride) {
        float v = x[i] + bias[i % p.cols];
        if (p.act == 1u) {
            v = max(v, 0.0);
        } else if (p.act == 2u) {
            float inner = 0.7978846 * (v + 0.044715 * v * v * v);
            v = 0.5 * v * (1.0 + tanh(inner));
        }
        x[i] = v;
    }
}
