#!/bin/sh
# Calls the algocloud endpoint Otsu segmentation (image -> image) with curl.
#
#   export ALGOCLOUD_ENDPOINT_TOKEN=ep_...   # the endpoint token, shown once by Complete Deployment
#   sh predict.sh
#
# It sends input.png from this folder to https://127.0.0.1:9443/predict and writes the
# answer to output.png. On an error curl exits non-zero and output.png holds the
# error instead: JSON {"code", "message", "traceback"?}.
#
# Other ways to send the image:
#   JPEG or GIF:   -H 'Content-Type: image/jpeg' --data-binary @photo.jpg
#   a form field:  -F 'image=@photo.png'   (instead of -H 'Content-Type: ...' --data-binary ...)
#   a URL:         -H 'Content-Type: application/json' -d '{"url": "https://example.com/photo.png"}'
set -eu
: "${ALGOCLOUD_ENDPOINT_TOKEN:?set ALGOCLOUD_ENDPOINT_TOKEN to the endpoint token}"

# The root certificate that signs the endpoint's certificate: curl verifies
# the endpoint with it (never use -k).
[ -f algocloud-ca.pem ] || curl -sS --fail -o algocloud-ca.pem 'http://127.0.0.1:8080/api/ca.pem'

curl -sS --fail-with-body --cacert algocloud-ca.pem \
  -H "Authorization: Bearer $ALGOCLOUD_ENDPOINT_TOKEN" \
  -H 'Content-Type: image/png' \
  --data-binary @input.png \
  -o output.png \
  'https://127.0.0.1:9443/predict'
