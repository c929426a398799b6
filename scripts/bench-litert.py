#!/usr/bin/env python3
"""The LiteRT reference for MobileFaceNet's speed (BENCHMARKS.md): the same
.tflite file run by Google's own runtime (ai-edge-litert, XNNPACK), side by
side with edged's TensorFlow rebuild. A benchmark tool only: LiteRT is never
a dependency of edged (pip install ai-edge-litert==2.3.0 pillow to run this).

  python3 scripts/bench-litert.py batch --threads 2            # ms per face (median of runs), batch 2

  python3 scripts/bench-litert.py chips DIR --threads 2        # whole process: embed every 112x112 PNG in DIR, one line each

The file fixes batch 2 (its final RESHAPE has the constant shape [2, 192]),
and the XNNPACK delegate refuses to resize it, so LiteRT always runs two
faces per invoke here (an odd last face is padded).

Compare `chips` with `edged embed --chip --backbone mobilefacenet DIR` under
/usr/bin/time: both decode the PNGs, run the network and print JSON lines.
"""
import argparse, json, os, statistics, sys, time

import numpy as np

MODEL = os.path.join(os.environ.get("EDGED_MODELS", os.path.join(os.path.dirname(__file__), "..", ".deps", "models")), "MobileFaceNet.tflite")


def interpreter(threads, batch):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        sys.exit("bench-litert: ai-edge-litert is not installed (pip install ai-edge-litert==2.3.0); it is only the benchmark's reference")
    it = Interpreter(model_path=MODEL, num_threads=threads)
    inp = it.get_input_details()[0]["index"]
    it.resize_tensor_input(inp, [batch, 112, 112, 3])
    it.allocate_tensors()
    return it, inp, it.get_output_details()[0]["index"]


def read_png(path):
    try:
        from PIL import Image
    except ImportError:
        sys.exit("bench-litert: Pillow is not installed (pip install pillow); it decodes the chips for the reference run")
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["batch", "chips"])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    batch = 2
    if a.mode == "batch":
        it, inp, out = interpreter(a.threads, batch)
        x = np.random.default_rng(0).uniform(-1, 1, (batch, 112, 112, 3)).astype(np.float32)
        it.set_tensor(inp, x); it.invoke()
        ts = []
        for _ in range(a.runs):
            t = time.perf_counter(); it.set_tensor(inp, x); it.invoke(); it.get_tensor(out); ts.append(time.perf_counter() - t)
        print(json.dumps({"batch": batch, "threads": a.threads, "ms_per_face_median": 1e3 * statistics.median(ts) / batch}))
        return
    files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir) if f.endswith(".png"))
    it, inp, out = interpreter(a.threads, batch)
    for i in range(0, len(files), batch):
        group = files[i:i + batch]
        x = np.zeros((batch, 112, 112, 3), np.float32)
        for j, f in enumerate(group):
            x[j] = (read_png(f).astype(np.float32) - 127.5) / 128
        it.set_tensor(inp, x); it.invoke()
        for f, e in zip(group, it.get_tensor(out)):
            print(json.dumps({"file": f, "embedding": [float(v) for v in e]}))


if __name__ == "__main__":
    main()
