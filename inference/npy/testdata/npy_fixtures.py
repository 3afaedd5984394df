# Writes, for every dtype and a range of shapes, the .npy files numpy itself
# writes (C order, Fortran order, big-endian, format versions 2.0 and 3.0)
# next to the array's canonical bytes (little-endian, C order), and a
# manifest, into the folder sys.argv[1]. Package npy's tests and package
# inference's HTTP tests of the numpy type use it.
import json, os, sys
import numpy as np
from numpy.lib import format as npf

out = sys.argv[1]
rng = np.random.default_rng(7)
dtypes = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float16", "float32", "float64"]
shapes = [(), (0,), (5,), (3, 4), (2, 3, 4), (0, 3), (4, 1, 2, 3), (2, 2, 2, 2, 2)]
manifest = []

def sample(dt, shape):
    if dt == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.startswith("float"):
        a = (rng.standard_normal(size=shape) * 1000).astype(dt)
        if a.size >= 4:
            flat = a.reshape(-1)
            flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)

for dt in dtypes:
    for shape in shapes:
        a = sample(dt, shape)
        name = "%s_%s" % (dt, "x".join(map(str, shape)) or "scalar")
        canonical = a.astype(a.dtype.newbyteorder("<"), order="C")  # ascontiguousarray would make a 0-d array 1-d
        with open(os.path.join(out, name + ".raw"), "wb") as f:
            f.write(canonical.tobytes())
        variants = {"c": canonical, "f": a.copy(order="F")}
        if a.dtype.itemsize > 1:
            variants["be"] = a.astype(a.dtype.newbyteorder(">"))
            variants["fbe"] = variants["be"].copy(order="F")
        for v, arr in variants.items():
            np.save(os.path.join(out, "%s_%s.npy" % (name, v)), arr)
            manifest.append({"npy": "%s_%s.npy" % (name, v), "raw": name + ".raw", "dtype": dt,
                             "shape": list(shape), "canonical": v == "c"})
        for major in (2, 3):
            p = "%s_v%d.npy" % (name, major)
            with open(os.path.join(out, p), "wb") as f:
                npf.write_array(f, a, version=(major, 0))
            manifest.append({"npy": p, "raw": name + ".raw", "dtype": dt, "shape": list(shape), "canonical": False})

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f)
