"""Calls the algocloud endpoint Otsu segmentation (image -> json).

    export ALGOCLOUD_ENDPOINT_TOKEN=ep_...   # the endpoint token, shown once by Complete Deployment
    python3 example.py [input.png]

algocloud_client.py (beside this file) needs numpy and Pillow, nothing else.
predict also takes PNG/JPEG bytes, an http(s) URL, a PIL image or a numpy
array, e.g. algo.predict(np.zeros((64, 64, 3), np.uint8)).
"""
import json
import sys

from algocloud_client import Algorithm

algo = Algorithm("https://otsu-segmentation.api.example.com")  # token: $ALGOCLOUD_ENDPOINT_TOKEN
x = sys.argv[1] if len(sys.argv) > 1 else "input.png"
out = algo.predict(x)  # the JSON value the algorithm returned
print(json.dumps(out, indent=2))
