// Package inference is the model server every deployed algorithm runs
// (cmd/algocloud-infer, configured by a Config the platform writes): one
// HTTP(S) server, a bearer token, and what runs predict behind it.
//
// What runs predict depends on the deployment's environment:
//
//   - python: Config.Threads Python worker processes (worker.go) each run
//     the embedded aai_runner.py, which imports the author's aai_main.py
//     once and calls predict (or predict_batch) for every batch. Go and
//     Python speak a framed protocol over pipes (protocol.go: a JSON header
//     and the raw bytes of a Value), and the batcher (batcher.go, slot.go)
//     forms batches up to MaxBatchSize within MaxQueueDelay, bounds the
//     queue (429 beyond it), applies Timeout and restarts a worker that
//     died or broke the protocol.
//   - onnx: no Python at all. The model named by the code folder's
//     aai_onnx.json runs in process through ONNX Runtime (package onnxrt:
//     preprocessing, Run, postprocessing), on the same queue, batching,
//     admission and metrics as the Python workers (onnx.go).
//
// Two protocols reach it, with the same token, admission (admission.go),
// size limits, timeouts and metrics (metrics.go):
//
//   - POST /predict: the deployment's own API type. The request body is
//     decoded into the input type (image, numpy, JSON or file:
//     imageinput.go, inputs.go), and what predict returns is encoded as
//     the output type (codec.go): images as PNG (package pngenc), arrays
//     as .npy (package npy), JSON, or a file. /openapi.json describes it
//     (openapi.go), /v1/test-input answers the algorithm's
//     testing_input_data as a request body, and inferapi.SelfTest (the
//     wizard's test step) sends that back to /predict.
//   - The Open Inference Protocol (KServe v2 / Triton HTTP) under /v2
//     (v2.go, v2types.go, v2tensor.go, v2openapi.go): the model's one input
//     and one output as v2 tensors, in JSON or with the binary tensor data
//     extension, for clients that already speak it.
//
// Every error answer is JSON with a stable code (errors.go; the codes are
// package inferapi's, with the config and the client side), and
// docs/inference-protocol.md describes the whole HTTP interface. /healthz
// and /readyz need no token (inferapi.WaitReady polls /readyz); the TLS certificate
// and the token file are reloaded without a restart (tls.go, token.go);
// cancelling Server.Run's context (algocloud-infer does on SIGTERM) drains
// the requests in flight before the workers stop.
package inference
