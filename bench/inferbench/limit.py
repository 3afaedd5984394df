"""The limit: the same Python work as one request, in a loop, with no server.

Each item is PIL decode -> np.asarray -> predict (aai_main.AAI) -> PIL encode
PNG. --procs processes run the loop side by side for --seconds; the answer is
one JSON line: items/s over all processes, and (first process) the mean ms per
stage and the PNG size.

    python3 limit.py --image in.png --code-dir DIR --procs 2 --seconds 10 [--level 6]
"""

import argparse
import importlib
import io
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
from PIL import Image


def loop(path, code_dir, seconds, level, start, out):
    sys.path.insert(0, code_dir)
    model = importlib.import_module("aai_main").AAI()
    data = open(path, "rb").read()
    start.wait()
    n, t_dec, t_pred, t_enc, size = 0, 0.0, 0.0, 0.0, 0
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        x = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        t1 = time.perf_counter()
        y = model.predict(x)
        t2 = time.perf_counter()
        buf = io.BytesIO()
        kw = {} if level is None else {"compress_level": level}
        Image.fromarray(np.asarray(y)).save(buf, format="PNG", **kw)
        t3 = time.perf_counter()
        n += 1
        t_dec, t_pred, t_enc, size = t_dec + t1 - t0, t_pred + t2 - t1, t_enc + t3 - t2, buf.tell()
    out.put({"n": n, "decode_ms": 1e3 * t_dec / max(n, 1), "predict_ms": 1e3 * t_pred / max(n, 1),
             "encode_ms": 1e3 * t_enc / max(n, 1), "png_bytes": size})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--code-dir", required=True)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--level", type=int, default=None, help="PNG compress_level (default: PIL's, 6)")
    a = p.parse_args()
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=loop, args=(a.image, a.code_dir, a.seconds, a.level, start, out)) for _ in range(a.procs)]
    for pr in procs:
        pr.start()
    time.sleep(0.5)  # every process has loaded the model
    start.set()
    results = [out.get() for _ in procs]
    for pr in procs:
        pr.join()
    first = results[0]
    t = os.times()  # the joined processes' CPU time (and this one's)
    print(json.dumps({"items_per_s": sum(r["n"] for r in results) / a.seconds, "decode_ms": first["decode_ms"],
                      "predict_ms": first["predict_ms"], "encode_ms": first["encode_ms"], "png_bytes": first["png_bytes"],
                      "cpu_s": t.user + t.system + t.children_user + t.children_system}))


if __name__ == "__main__":
    main()
