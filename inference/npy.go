package inference

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/inference/npy"
)

// The numpy input and output type's .npy reader and writer are package
// npy; these adapt its Array to a tensor Value and its errors to the API's
// error codes (400s).

// npySupported lists the dtypes the numpy type takes, for the docs.
const npySupported = npy.Supported

// npyCodes is the API error code of each kind of .npy file npy.Decode
// refuses (package inferapi's, which Summarize shares).
var npyCodes = inferapi.NPYErrorCodes

// decodeNPY parses a .npy file into a tensor value: little-endian, C order
// (npy.Decode). data is reused for the tensor's bytes when no conversion is
// needed. Every failure is an *APIError (400) with a code that names the
// problem.
func decodeNPY(data []byte) (Value, error) {
	a, err := npy.Decode(data)
	if err != nil {
		var ne *npy.Error
		if errors.As(err, &ne) {
			return Value{}, apiErr(http.StatusBadRequest, npyCodes[ne.Kind], "%s", ne.Message)
		}
		return Value{}, err
	}
	return Value{Kind: KindTensor, DType: a.DType, Shape: a.Shape, Data: a.Data}, nil
}

// encodeNPY writes a tensor as a .npy file, byte for byte what numpy.save
// writes for the same C-contiguous array (npy.Encode).
func encodeNPY(v Value) ([]byte, error) {
	if v.Kind != KindTensor {
		return nil, fmt.Errorf("expected a numpy array, got a %s value", v.Kind)
	}
	if _, err := v.tensorLen(); err != nil {
		return nil, err
	}
	return npy.Encode(npy.Array{DType: v.DType, Shape: v.Shape, Data: v.Data})
}
