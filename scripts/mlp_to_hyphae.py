#!/usr/bin/env python3
"""Converts a numpy/PyTorch MLP state dict into Hyphae's weights file (HYMW, docs/compute.md),
and runs the numpy reference forward pass the tests compare the worker with.

  mlp_to_hyphae.py convert STATE.npz|STATE.pt OUT.hymw [--hidden relu|gelu|identity]
                   [--last identity|relu|gelu] [--softmax]
  mlp_to_hyphae.py reference MODEL.hymw INPUT.hymx OUT.hymx
  mlp_to_hyphae.py random-state OUT.npz SIZES...      (a seeded random state dict, for tests)

A state dict holds `<name>.weight` (outputs x inputs, as torch.nn.Linear) and `<name>.bias`
per layer, in layer order (the order of the file). GELU is the tanh approximation.
"""
import argparse
import struct
import sys

import numpy as np

ACTS = {"identity": 0, "relu": 1, "gelu": 2}


def load_state(path):
    if path.endswith((".pt", ".pth")):
        import torch  # optional: only for PyTorch files

        state = torch.load(path, map_location="cpu")
        return [(k, v.detach().numpy()) for k, v in state.items()]
    with np.load(path) as z:
        return [(k, z[k]) for k in z.files]


def layers_of(state):
    weights = [(k[: -len(".weight")], v) for k, v in state if k.endswith(".weight")]
    biases = {k[: -len(".bias")]: v for k, v in state if k.endswith(".bias")}
    if not weights:
        sys.exit("no '<name>.weight' entries in the state dict")
    out = []
    for name, w in weights:
        if w.ndim != 2:
            sys.exit(f"{name}.weight is not a matrix")
        b = biases.get(name, np.zeros(w.shape[0], dtype=np.float32))
        out.append((w.astype(np.float32), b.astype(np.float32)))
    for i in range(len(out) - 1):
        if out[i][0].shape[0] != out[i + 1][0].shape[1]:
            sys.exit(f"layer {i} outputs {out[i][0].shape[0]}, layer {i+1} takes {out[i+1][0].shape[1]}")
    return out


def convert(args):
    layers = layers_of(load_state(args.state))
    with open(args.out, "wb") as f:
        f.write(b"HYMW" + bytes([1, 1 if args.softmax else 0, 0, 0]))
        f.write(struct.pack("<I", len(layers)))
        for i, (w, b) in enumerate(layers):
            act = ACTS[args.last if i == len(layers) - 1 else args.hidden]
            out_n, in_n = w.shape
            f.write(struct.pack("<III", in_n, out_n, act))
            f.write(np.ascontiguousarray(w.T, dtype="<f4").tobytes())
            f.write(np.ascontiguousarray(b, dtype="<f4").tobytes())


def read_matrix(path):
    data = open(path, "rb").read()
    if data[:4] != b"HYMX" or data[4] != 1 or data[5] != 1:
        sys.exit(f"{path}: not a HYMX v1 f32 matrix")
    rows, cols = struct.unpack("<II", data[8:16])
    return np.frombuffer(data[16:], dtype="<f4").reshape(rows, cols)


def write_matrix(path, m):
    m = np.ascontiguousarray(m, dtype="<f4")
    with open(path, "wb") as f:
        f.write(b"HYMX" + bytes([1, 1, 0, 0]) + struct.pack("<II", *m.shape) + m.tobytes())


def read_model(path):
    data = open(path, "rb").read()
    if data[:4] != b"HYMW" or data[4] != 1:
        sys.exit(f"{path}: not a HYMW v1 weights file")
    softmax = data[5] == 1
    (count,) = struct.unpack("<I", data[8:12])
    at, layers = 12, []
    for _ in range(count):
        in_n, out_n, act = struct.unpack("<III", data[at : at + 12])
        at += 12
        w = np.frombuffer(data[at : at + 4 * in_n * out_n], dtype="<f4").reshape(in_n, out_n)
        at += 4 * in_n * out_n
        b = np.frombuffer(data[at : at + 4 * out_n], dtype="<f4")
        at += 4 * out_n
        layers.append((w, b, act))
    return layers, softmax


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def reference(args):
    layers, softmax = read_model(args.model)
    h = read_matrix(args.input).astype(np.float64)
    for w, b, act in layers:
        h = h @ w.astype(np.float64) + b.astype(np.float64)
        if act == 1:
            h = np.maximum(h, 0.0)
        elif act == 2:
            h = gelu(h)
    if softmax:
        e = np.exp(h - h.max(axis=1, keepdims=True))
        h = e / e.sum(axis=1, keepdims=True)
    write_matrix(args.out, h)


def random_state(args):
    rng = np.random.default_rng(1234)
    state = {}
    for i in range(len(args.sizes) - 1):
        fan_in = args.sizes[i]
        state[f"fc{i}.weight"] = (rng.standard_normal((args.sizes[i + 1], fan_in)) / np.sqrt(fan_in)).astype(np.float32)
        state[f"fc{i}.bias"] = (0.1 * rng.standard_normal(args.sizes[i + 1])).astype(np.float32)
    np.savez(args.out, **state)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("state")
    c.add_argument("out")
    c.add_argument("--hidden", choices=ACTS, default="relu")
    c.add_argument("--last", choices=ACTS, default="identity")
    c.add_argument("--softmax", action="store_true")
    r = sub.add_parser("reference")
    r.add_argument("model")
    r.add_argument("input")
    r.add_argument("out")
    s = sub.add_parser("random-state")
    s.add_argument("out")
    s.add_argument("sizes", type=int, nargs="+")
    args = p.parse_args()
    {"convert": convert, "reference": reference, "random-state": random_state}[args.cmd](args)


if __name__ == "__main__":
    main()
