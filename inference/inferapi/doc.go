// Package inferapi is the inference server's contract as the platform sees
// it: the config file the platform writes and cmd/algocloud-infer reads
// (Config), the JSON error body's codes and stages, the wire form of that
// body (Error), the client calls the platform makes on a running server
// (WaitReady, SelfTest, InitError), the rotated token file
// (WriteTokenFile) and where ONNX Runtime's library and an ONNX
// deployment's configuration are found.
//
// It is cgo-free and links neither the server (package inference) nor ONNX
// Runtime's binding (inference/onnxrt), so the worker and the activities,
// which only write configs and call servers, do not need cgo
// (docs/architecture.md, Layering). The server imports it and converts its
// own error type (inference.APIError, which carries a cause) to this wire
// form.
package inferapi
