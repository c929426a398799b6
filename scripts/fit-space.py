#!/usr/bin/env python3
"""Fit a backbone's gallery.Space (calibration prior and distance radii) on a
folder-per-person face set, from `edged embed --backbone ID DIR` JSON lines.

Usage:
  bin/edged embed --backbone mobilefacenet ../shared/data/lfw-dev/images > mfn.jsonl
  bin/edged embed --backbone dlib ../shared/data/lfw-dev/images > dlib.jsonl
  python3 scripts/fit-space.py mfn.jsonl --reference dlib.jsonl

People are split in two halves by a hash of their name: the prior is fitted
on half A and checked on half B (the figures printed for B are what the fit
predicts on people it never saw). Distances are Euclidean between
L2-normalised vectors; a gallery entry is the normalised mean of the
normalised shots, as gallery.Gallery builds its clusters.

The radii (margin, cluster radius, tracker and unknown-cluster distances)
are mapped from the reference backbone's tuned values by where they sit
between its genuine and impostor distances: v' = g' + (v - g) * (i' - g') / (i - g)
with g, i the mean same-person and different-person distances of single
faces. Only numpy-free standard library Python is used.
"""
import argparse, hashlib, json, math, os, random, statistics as st

DLIB_RADII = {"Margin": 0.03, "ClusterRadius": 0.42, "TrackSameFace": 0.3,
              "TrackOtherFace": 0.45, "UnknownRadius": 0.36,
              "MinThreshold": 0.2, "MaxThreshold": 0.5}


def load(path):
    people = {}
    for line in open(path):
        r = json.loads(line)
        faces = r.get("faces") or []
        if not faces:
            continue
        f = max(faces, key=lambda f: f.get("score", 0))
        v = f["embedding"]
        n = math.sqrt(sum(x * x for x in v))
        person = os.path.basename(os.path.dirname(r["file"]))
        people.setdefault(person, []).append([x / n for x in v])
    return people


def unit_mean(vs):
    m = [sum(c) for c in zip(*vs)]
    n = math.sqrt(sum(x * x for x in m))
    return [x / n for x in m]


def dist(a, b):
    return math.sqrt(max(0.0, sum((x - y) ** 2 for x, y in zip(a, b))))


def half(name):
    return hashlib.sha256(name.encode()).digest()[0] & 1


def measure(people, ks, rng, max_imp=20000):
    """Per k: genuine distances (k shots vs another face of the person) and
    impostor distances (k shots of P vs faces of others)."""
    names = sorted(people)
    out = {}
    for k in ks:
        gen, imp = [], []
        entries = []
        for p in names:
            fs = people[p]
            if len(fs) < k + 1:
                continue
            entries.append((p, unit_mean(fs[:k])))
            for probe in fs[k:]:
                gen.append(dist(entries[-1][1], probe))
        others = [(p, f) for p in names for f in people[p]]
        for p, m in entries:
            cand = [f for q, f in others if q != p]
            for f in rng.sample(cand, min(len(cand), max(1, max_imp // max(1, len(entries))))):
                imp.append(dist(m, f))
        out[k] = (gen, imp)
    return out


def lower_sd(xs):
    """The sd of a normal law with the same median and 0.1% quantile: the
    threshold for the nearest of tens of people sits that deep in the lower
    tail, and MobileFaceNet's tail is heavier than its middle suggests."""
    xs = sorted(xs)
    q = lambda u: xs[min(len(xs) - 1, int(u * len(xs)))]
    return (q(0.5) - q(0.001)) / 3.09


def fit_ab(ks, ys, power):
    # y = a + b / k^power, least squares
    xs = [1 / (k ** power) for k in ks]
    mx, my = st.mean(xs), st.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0
    return my - b * mx, b


def fit(people, rng):
    ks = [1, 3, 5]
    m = measure(people, ks, rng)
    imp_mean = [st.mean(m[k][1]) for k in ks]
    gen_mean = [st.mean(m[k][0]) for k in ks]
    gen_sd = [st.stdev(m[k][0]) for k in ks]
    ia, ib = fit_ab(ks, imp_mean, 1.5)
    ga, gb = fit_ab(ks, gen_mean, 0.75)
    sa, sb = fit_ab(ks, gen_sd, 1.0)
    isd = st.mean(lower_sd(m[k][1]) for k in ks)
    return {"ImpostorMean": ia, "ImpostorMeanK": ib, "ImpostorSD": isd,
            "GenuineMean": ga, "GenuineMeanK": gb, "GenuineSD": sa, "GenuineSDK": sb}, m


def single(people):
    """Mean same-person and different-person distances of single faces."""
    gen, imp = measure(people, [1], random.Random(7))[1]
    return st.mean(gen), st.mean(imp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("embeddings")
    ap.add_argument("--reference", help="the dlib backbone's embeddings of the same set, to map the radii")
    a = ap.parse_args()
    rng = random.Random(1)
    people = load(a.embeddings)
    A = {p: v for p, v in people.items() if half(p) == 0}
    B = {p: v for p, v in people.items() if half(p) == 1}
    prior, _ = fit(A, rng)
    print("fitted on half A (%d people, %d faces):" % (len(A), sum(map(len, A.values()))))
    for k, v in prior.items():
        print("  %-14s %.4f" % (k, v))
    _, mb = fit(B, rng)
    print("check on half B (%d people): measured vs predicted" % len(B))
    for k in [1, 3, 5]:
        gen, imp = mb[k]
        pi = prior["ImpostorMean"] + prior["ImpostorMeanK"] / k ** 1.5
        pg = prior["GenuineMean"] + prior["GenuineMeanK"] / k ** 0.75
        print("  k=%d impostor mean %.3f (pred %.3f) lower-sd %.3f | genuine mean %.3f (pred %.3f) sd %.3f  [n=%d/%d]"
              % (k, st.mean(imp), pi, lower_sd(imp), st.mean(gen), pg, st.stdev(gen), len(imp), len(gen)))
    if a.reference:
        ref = load(a.reference)
        rA = {p: v for p, v in ref.items() if half(p) == 0}
        g0, i0 = single(rA)
        g1, i1 = single(A)
        print("radii mapped from the reference (single faces: ref genuine %.3f impostor %.3f; this %.3f / %.3f):" % (g0, i0, g1, i1))
        s = (i1 - g1) / (i0 - g0)
        for k, v in DLIB_RADII.items():
            if k == "Margin":
                print("  %-14s %.3f" % (k, v * s))
            else:
                print("  %-14s %.3f" % (k, g1 + (v - g0) * s))


if __name__ == "__main__":
    main()
