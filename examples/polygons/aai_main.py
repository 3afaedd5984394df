# Polygon measurements: area, perimeter, centroid and bounding box of each
# polygon in a JSON document, e.g. the outlines a segmentation produced or a
# user drew. Input: JSON {"polygons": [[[x, y], ...], ...]} (at least 3
# vertices each, in order, closed implicitly); output: JSON. numpy only.
# predict prints one line per polygon: the async predictions API returns what
# predict printed as the prediction's logs.
import numpy as np


class AAI:
    def __init__(self):
        self.max_polygons = 10000

    def predict(self, x):
        if not isinstance(x, dict) or not isinstance(x.get("polygons"), list):
            raise ValueError('expected {"polygons": [[[x, y], ...], ...]}')
        polygons = x["polygons"]
        if len(polygons) > self.max_polygons:
            raise ValueError("at most %d polygons" % self.max_polygons)
        out = []
        for i, poly in enumerate(polygons):
            p = np.asarray(poly, dtype=np.float64)
            if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
                raise ValueError("polygon %d: expected at least 3 [x, y] vertices" % i)
            m = measure(p)
            print("polygon %d: %d vertices, area %.3f" % (i, len(p), m["area"]))
            out.append(m)
        total = sum(m["area"] for m in out)
        print("%d polygons, total area %.3f" % (len(out), total))
        return {"count": len(out), "total_area": round(total, 6), "polygons": out}

    def testing_input_data(self):
        # A 4x3 rectangle and a triangle.
        return {"polygons": [[[0, 0], [4, 0], [4, 3], [0, 3]], [[0, 0], [2, 0], [1, 2]]]}


def measure(p):
    """Shoelace area and centroid (of the region, not the vertices), perimeter, bounding box."""
    x, y = p[:, 0], p[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    signed = cross.sum() / 2
    if signed != 0:
        cx = ((x + xn) * cross).sum() / (6 * signed)
        cy = ((y + yn) * cross).sum() / (6 * signed)
    else:  # degenerate (all vertices on a line): the vertices' mean
        cx, cy = x.mean(), y.mean()
    return {
        "vertices": len(p),
        "area": round(abs(float(signed)), 6),
        "perimeter": round(float(np.hypot(xn - x, yn - y).sum()), 6),
        "centroid": [round(float(cx), 6), round(float(cy), 6)],
        "bbox": [float(x.min()), float(y.min()), float(x.max()), float(y.max())],
    }
