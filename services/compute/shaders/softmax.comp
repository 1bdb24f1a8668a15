// In place, row-wise softmax of a rows x cols row-major matrix: one workgroup per row (grid-
// stride over rows), a shared-memory tree reduction for the row's maximum, then for the sum.
#version 450

layout(local_size_x = 256) in;

layout(std430, set = 0, binding = 0) buffer Values { float x[]; };

layout(push_constant) uniform Params {
    uint rows;
    uint cols;
} p;

shared float red[256];

void main() {
    uint t = gl_LocalInvocationID.x;
    for (uint row = gl_WorkGroupID.x; row < p.rows; row += gl_NumWorkGroups.x) {
        uint base = row * p.cols;
        float m = -3.402823466e38;
        for (uint c = t; c < p.cols; c += 256) {
            m = max(m, x[base + c]);
        }
        red[t] = m;
        barrier();
        for (uint s = 128; s > 0; s >>= 1) {
            if (t < s) {
                red[t] = max(red[t], red[t + s]);
            }
            barrier();
        }
        float rowMax = red[0];
        barrier();
        float sum = 0.0;
        for (uint c = t; c < p.cols; c += 256) {
            float e = exp(x[base + c] - rowMax);
            x[base + c] = e;
            sum += e;
        }
        red[t] = sum;
        barrier();
        for (uint s = 128; s > 0; s >>= 1) {
            if (t < s) {
                red[t] += red[t + s];
            }
            barrier();
        }
        float total = red[0];
        barrier();
        for (uint c = t; c < p.cols; c += 256) {
            x[base + c] = x[base + c] / total;
        }
        barrier();
    }
}
