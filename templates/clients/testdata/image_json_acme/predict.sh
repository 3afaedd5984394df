#!/bin/sh
# Calls the algocloud endpoint Otsu segmentation (image -> json) with curl.
#
#   export ALGOCLOUD_ENDPOINT_TOKEN=ep_...   # the endpoint token, shown once by Complete Deployment
#   sh predict.sh
#
# It sends input.png from this folder to https://otsu-segmentation.api.example.com/predict and prints the
# JSON answer. On an error curl exits non-zero after printing the error:
# JSON {"code", "message", "traceback"?}.
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
  'https://otsu-segmentation.api.example.com/predict'
echo
