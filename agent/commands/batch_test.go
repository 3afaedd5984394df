package commands

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestPackItemsRoundTrip(t *testing.T) {
	var in Batch
	types := []string{"image/png", "image/jpeg", "application/json"}
	idx := 3
	for i := range 2000 {
		idx += 1 + i%3
		in.Items = append(in.Items, BatchItem{Index: idx, ContentType: types[i%7%3], Length: int64(i * 37 % 5000)})
	}
	want := append([]BatchItem(nil), in.Items...)
	plain, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.PackItems(); err != nil {
		t.Fatal(err)
	}
	packed, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2,000 items: %d bytes of JSON plain, %d packed", len(plain), len(packed))
	if len(packed)*5 > len(plain) {
		t.Errorf("packed payload is %d bytes against %d plain: not compact", len(packed), len(plain))
	}
	var got Batch
	if err := json.Unmarshal(packed, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.UnpackItems(); err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != len(want) {
		t.Fatalf("%d items back, want %d", len(got.Items), len(want))
	}
	for i := range want {
		if got.Items[i] != want[i] {
			t.Fatalf("item %d: %+v, want %+v", i, got.Items[i], want[i])
		}
	}
	if got.PackedItems != nil || got.ContentTypes != nil {
		t.Error("the packed form stays after unpacking")
	}
}

func TestPackItemsRefusesBadInput(t *testing.T) {
	for _, items := range [][]BatchItem{
		{{Index: 2}, {Index: 2}},
		{{Index: 5}, {Index: 1}},
		{{Index: 1, Length: -1}},
	} {
		in := Batch{Items: items}
		if err := in.PackItems(); err == nil {
			t.Errorf("%+v packed", items)
		}
	}
}

func TestUnpackItemsRefusesBadPackedForms(t *testing.T) {
	for name, in := range map[string]Batch{
		"cut varint":          {PackedItems: []byte{1, 0, 0x80}, ContentTypes: []string{"a"}},
		"zero step":           {PackedItems: []byte{0, 0, 1}, ContentTypes: []string{"a"}},
		"unknown type":        {PackedItems: []byte{1, 1, 1}, ContentTypes: []string{"a"}},
		"both forms":          {Items: []BatchItem{{Index: 0}}, PackedItems: []byte{1, 0, 1}, ContentTypes: []string{"a"}},
		"types without items": {ContentTypes: []string{"a"}},
		"huge length":         {PackedItems: append([]byte{1, 0}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}...), ContentTypes: []string{"a"}},
	} {
		err := in.UnpackItems()
		if err == nil {
			t.Errorf("%s: unpacked", name)
			continue
		}
		if !strings.Contains(err.Error(), "items") {
			t.Errorf("%s: %v does not name the field", name, err)
		}
	}
	in := Batch{PackedItems: []byte{1, 0, 9, 2, 0, 4}, ContentTypes: []string{"image/png"}}
	if err := in.UnpackItems(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in.Items) != "[{0 image/png 9} {2 image/png 4}]" {
		t.Errorf("items %v", in.Items)
	}
}
