#!/bin/sh
# Calls the algocloud endpoint Otsu segmentation (image -> image) with curl.
#
#   export ALGOCLOUD_ENDPOINT_TOKEN=ep_...   # the endpoint token, shown once by Complete Deployment
#   sh predict.sh
#
# It sends input.png from this folder to https://otsu-segmentation.api.example.com/predict and writes the
# answer to output.png. On an error curl exits non-zero and output.png holds the
# error instead: JSON {"code", "message", "traceback"?}.
#
# Other ways to send the image:
#   JPEG or GIF:   -H 'Content-Type: image/jpeg' --data-binary @photo.jpg
#   a form field:  -F 'image=@photo.png'   (instead of -H 'Content-Type: ...' --data-binary ...)
#   a URL:         -H 'Content-Type: application/json' -d '{"url": "https://example.com/photo.png"}'
set -eu
: "${ALGOCLOUD_ENDPOINT_TOKEN:?set ALGOCLOUD_ENDPOINT_TOKEN to the endpoint token}"

curl -sS --fail-with-body \
  -H "Authorization: Bearer $ALGOCLOUD_ENDPOINT_TOKEN" \
  -H 'Content-Type: image/png' \
  --data-binary @input.png \
  -o output.png \
  'https://otsu-segmentation.api.example.com/predict'
