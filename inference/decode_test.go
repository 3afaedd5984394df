package inference

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"math"
	"mime/multipart"
	"testing"

	"github.com/stretchr/testify/require"
)

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func multipartBody(t *testing.T, field string, data []byte) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	require.NoError(t, mw.WriteField("note", "fields before the image are skipped"))
	fw, err := mw.CreateFormFile(field, "in.png")
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return b.Bytes(), mw.FormDataContentType()
}

// pngHeaderBomb is a PNG signature and a valid IHDR claiming w x h RGB pixels,
// followed by a tiny IDAT: a decoder that trusts the header allocates w*h*4 bytes.
func pngHeaderBomb(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		out = append(out, typ...)
		out = append(out, data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit truecolour, deflate, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, chunk("IEND", nil)...)
}

func codeOf(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestDecodeImageFormats(t *testing.T) {
	src := testImage(9, 5, 17)
	v, err := decodeImage(pngBytes(t, src), 1000)
	require.NoError(t, err)
	require.Equal(t, []int{5, 9, 3}, v.Shape)
	require.Equal(t, []byte{17, src.Pix[1], src.Pix[2]}, v.Data[:3])

	var jb bytes.Buffer
	require.NoError(t, jpeg.Encode(&jb, src, &jpeg.Options{Quality: 95}))
	v, err = decodeImage(jb.Bytes(), 1000)
	require.NoError(t, err)
	require.Equal(t, []int{5, 9, 3}, v.Shape)

	pal := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.RGBA{1, 2, 3, 255}, color.RGBA{200, 100, 0, 255}})
	pal.Pix = []byte{0, 1}
	var gb bytes.Buffer
	require.NoError(t, gif.Encode(&gb, pal, nil))
	v, err = decodeImage(gb.Bytes(), 1000)
	require.NoError(t, err)
	require.Equal(t, []byte{1, 2, 3, 200, 100, 0}, v.Data)

	_, err = decodeImage(pngBytes(t, src), 44)
	require.Equal(t, CodeImageTooLarge, codeOf(err))
	_, err = decodeImage(pngHeaderBomb(50000, 50000), 40_000_000)
	require.Equal(t, CodeImageTooLarge, codeOf(err))
	_, err = decodeImage(pngHeaderBomb(0, 10), 40_000_000)
	require.Equal(t, CodeCorruptImage, codeOf(err))
}

func TestTensorToImage(t *testing.T) {
	f32 := func(vals ...float32) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	cases := []struct {
		name string
		v    Value
		want []byte // gray pixels, or "" for an error
		err  string
	}{
		{"uint8", tensorValue("uint8", []int{1, 2}, []byte{0, 200}), []byte{0, 200}, ""},
		{"bool", tensorValue("bool", []int{1, 2, 1}, []byte{0, 1}), []byte{0, 255}, ""},
		{"float32", tensorValue("float32", []int{1, 3}, f32(0, 0.5, 1)), []byte{0, 128, 255}, ""},
		{"float16", tensorValue("float16", []int{1, 2}, []byte{0x00, 0x3c, 0x00, 0x38}), []byte{255, 128}, ""},
		{"int16", tensorValue("int16", []int{1, 2}, []byte{7, 0, 255, 0}), []byte{7, 255}, ""},
		{"float out of range", tensorValue("float32", []int{1, 1}, f32(2)), nil, "[0, 1]"},
		{"float NaN", tensorValue("float32", []int{1, 1}, f32(float32(math.NaN()))), nil, "[0, 1]"},
		{"negative int", tensorValue("int8", []int{1, 1}, []byte{0xff}), nil, "0..255"},
		{"uint64 huge", tensorValue("uint64", []int{1, 1}, bytes.Repeat([]byte{0xff}, 8)), nil, "0..255"},
		{"1-D", tensorValue("uint8", []int{4}, []byte{1, 2, 3, 4}), nil, "not an image"},
		{"5 channels", tensorValue("uint8", []int{1, 1, 5}, []byte{1, 2, 3, 4, 5}), nil, "not an image"},
		{"channels first", tensorValue("uint8", []int{3, 2, 2}, make([]byte, 12)), nil, "channels-first"},
		{"empty", tensorValue("uint8", []int{0, 4}, nil), nil, "empty"},
		{"short data", tensorValue("uint8", []int{1 << 30, 1 << 30}, []byte{1}), nil, "needs more"},
		{"complex", tensorValue("complex64", []int{1, 1}, make([]byte, 8)), nil, "dtype"},
		{"json", Value{Kind: KindJSON, Data: []byte("1")}, nil, "numpy array"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := tensorToImage(c.v)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			gray, ok := img.(*image.Gray)
			require.True(t, ok)
			require.Equal(t, c.want, gray.Pix)
		})
	}
}

func TestDecodeBase64(t *testing.T) {
	want := []byte{0xfb, 0xff, 0x01}
	for _, s := range []string{"+/8B", "-_8B", "+/8\nB", "data:image/png;base64,+/8B"} {
		got, err := decodeBase64(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
}

// FuzzDecodeImage feeds arbitrary bytes to the image decoder: it must never
// panic, and what it accepts must be a consistent HxWx3 tensor within limits.
func FuzzDecodeImage(f *testing.F) {
	small := pngBytes(f, testImage(7, 3, 1))
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, testImage(8, 8, 2), nil); err != nil {
		f.Fatal(err)
	}
	var gb bytes.Buffer
	if err := gif.Encode(&gb, testImage(4, 4, 3), nil); err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{small, small[:len(small)/2], jb.Bytes(), gb.Bytes(), pngHeaderBomb(50000, 50000), pngHeaderBomb(3, 3), []byte("GIF89a"), nil} {
		f.Add(seed)
	}
	const maxPixels = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeImage(data, maxPixels)
		if err != nil {
			require.NotEmpty(t, codeOf(err), "decode errors are API errors: %v", err)
			return
		}
		require.Len(t, v.Shape, 3)
		require.Equal(t, 3, v.Shape[2])
		require.LessOrEqual(t, v.Shape[0]*v.Shape[1], maxPixels)
		require.Len(t, v.Data, v.Shape[0]*v.Shape[1]*3)
	})
}

func tensorValue(dtype string, shape []int, data []byte) Value {
	return Value{Kind: KindTensor, DType: dtype, Shape: shape, Data: data}
}
