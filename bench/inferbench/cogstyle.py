"""A Cog-style baseline: FastAPI + uvicorn, one prediction at a time.

POST /predict takes PNG bytes, decodes them with PIL, calls the algorithm's
predict (aai_main.AAI from --code-dir) and answers the PNG PIL writes (its
default level), like a Cog predictor taking and returning an image. The
endpoint is `async` and does its work inline, so predictions run one at a time
on the event loop, as Cog runs one prediction at a time.

    python3 cogstyle.py --port 8123 --code-dir DIR
"""

import argparse
import importlib
import io
import sys

import numpy as np
import uvicorn
from fastapi import FastAPI, Request, Response
from PIL import Image

app = FastAPI()
model = None


@app.post("/predict")
async def predict(request: Request):
    body = await request.body()
    x = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    y = model.predict(x)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(y)).save(buf, format="PNG")
    return Response(content=buf.getvalue(), media_type="image/png")


@app.get("/health")
async def health():
    return {"status": "ready"}


def main():
    global model
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--code-dir", required=True)
    a = p.parse_args()
    sys.path.insert(0, a.code_dir)
    model = importlib.import_module("aai_main").AAI()
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
