package spec

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func valid() Spec {
	return Spec{Name: "Seg", APIName: "seg-1", Input: Image, Output: Image}.WithDefaults()
}

func TestDefaults(t *testing.T) {
	s := valid()
	require.NoError(t, s.Validate())
	require.Equal(t, EnvPython, s.Environment)
	require.Equal(t, CPU, s.Compute)
	require.Equal(t, "t3.small", s.InstanceType)
	require.Equal(t, "us-east-1", s.Region)
	require.Equal(t, 1, s.Threads)
	require.Equal(t, "g4dn.xlarge", Spec{Compute: GPU}.WithDefaults().InstanceType)
}

func TestValidateNamesEachBadField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"missing name", func(s *Spec) { s.Name = "" }, "name"},
		{"long name", func(s *Spec) { s.Name = string(make([]byte, 101)) }, "name"},
		{"NUL in name", func(s *Spec) { s.Name = "seg\x00mentation" }, "name"},
		{"ANSI escape in name", func(s *Spec) { s.Name = "\x1b[31mred\x1b[0m" }, "name"},
		{"line break in name", func(s *Spec) { s.Name = "two\nlines" }, "name"},
		{"invalid UTF-8 in name", func(s *Spec) { s.Name = "bad\xffbyte" }, "name"},
		{"escape in description", func(s *Spec) { s.Description = "ok\n\x1b[2Jcleared" }, "description"},
		{"api name uppercase", func(s *Spec) { s.APIName = "Seg" }, "api_name"},
		{"api name leading digit", func(s *Spec) { s.APIName = "1seg" }, "api_name"},
		{"api name trailing hyphen", func(s *Spec) { s.APIName = "seg-" }, "api_name"},
		{"api name double hyphen", func(s *Spec) { s.APIName = "se--g" }, "api_name"},
		{"api name too long", func(s *Spec) { s.APIName = "a" + string(make([]byte, 63)) }, "api_name"},
		{"unknown environment", func(s *Spec) { s.Environment = "ruby" }, "environment"},
		{"unknown compute", func(s *Spec) { s.Compute = "tpu" }, "compute"},
		{"gpu type on cpu", func(s *Spec) { s.InstanceType = "g4dn.xlarge" }, "instance_type"},
		{"unknown region", func(s *Spec) { s.Region = "mars-1" }, "region"},
		{"zero threads", func(s *Spec) { s.Threads = -1 }, "threads"},
		{"too many threads", func(s *Spec) { s.Threads = MaxThreads + 1 }, "threads"},
		{"negative batch", func(s *Spec) { s.MaxBatchSize = -1 }, "max_batch_size"},
		{"huge batch", func(s *Spec) { s.MaxBatchSize = MaxBatchSize + 1 }, "max_batch_size"},
		{"huge delay", func(s *Spec) { s.MaxQueueDelayMS = MaxQueueDelayMS + 1 }, "max_queue_delay_ms"},
		{"negative queue", func(s *Spec) { s.MaxQueueSize = -1 }, "max_queue_size"},
		{"huge queue", func(s *Spec) { s.MaxQueueSize = MaxQueueSize + 1 }, "max_queue_size"},
		{"onnx numpy output", func(s *Spec) { s.Environment, s.Output = EnvONNX, Numpy }, "output"},
		{"onnx json input", func(s *Spec) { s.Environment, s.Input, s.Output = EnvONNX, JSON, JSON }, "input"},
		{"unknown input", func(s *Spec) { s.Input = "video" }, "input"},
		{"unknown output", func(s *Spec) { s.Output = "video" }, "output"},
		{"pip option", func(s *Spec) { s.Requirements = []string{"--index-url=http://evil"} }, "requirements[0]"},
		{"url requirement", func(s *Spec) { s.Requirements = []string{"numpy", "git+https://x/y.git"} }, "requirements[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.edit(&s)
			err := s.Validate()
			v, ok := AsValidation(err)
			require.True(t, ok, "want a ValidationError, got %v", err)
			var fields []string
			for _, f := range v.Fields {
				fields = append(fields, f.Field)
			}
			require.Contains(t, fields, tc.field)
		})
	}
}

// Environment onnx serves the image input types only: image->image and
// image->json; python serves the whole matrix.
func TestONNXPairs(t *testing.T) {
	for p := range SupportedPairs {
		s := valid()
		s.Environment, s.Input, s.Output = EnvONNX, p.In, p.Out
		err := s.Validate()
		if p == (Pair{Image, Image}) || p == (Pair{Image, JSON}) {
			require.NoError(t, err, p.String())
			require.True(t, ServesPair(EnvONNX, p))
		} else {
			require.ErrorContains(t, err, "environment onnx serves image->image and image->json", p.String())
			require.False(t, ServesPair(EnvONNX, p))
		}
		require.True(t, ServesPair(EnvPython, p))
	}
}

func TestRequirements(t *testing.T) {
	for _, ok := range []string{"numpy", "Pillow==10.0.1", "my_pkg>=1.0,<2", "pkg[extra]~=0.1", "a.b-c===1.0"} {
		require.NoError(t, ValidateRequirement(ok), ok)
	}
	for _, bad := range []string{"", "-e .", "--extra-index-url x", "pkg @ https://x", "../evil", "pkg; os.system('x')"} {
		require.Error(t, ValidateRequirement(bad), bad)
	}
	reqs, err := ParseRequirements("# comment\nnumpy==1.0  # pinned\n\n  scipy\n")
	require.NoError(t, err)
	require.Equal(t, []string{"numpy==1.0", "scipy"}, reqs)
	_, err = ParseRequirements("ok\n-r other.txt\n")
	v, isV := AsValidation(err)
	require.True(t, isV)
	require.Equal(t, "requirements[line 2]", v.Fields[0].Field)
}

// Names in any script stay valid; descriptions keep their line breaks.
func TestPrintableTextAccepted(t *testing.T) {
	s := valid()
	s.Name = "Segmentação 🧠 — v2"
	s.Description = "Otsu threshold.\n\tReturns a mask."
	require.NoError(t, s.Validate())
}
