package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// TestStageArchivePacksInputs stages a real zip into a real blob folder:
// 1,203 small members go into packs of at most packItems (3 packs), a
// member over packBytes into a blob of its own, and every item's input
// reads back byte for byte on the worker's path (a range of its pack) and
// through a chunk's pack cache; a range past its pack fails its item.
func TestStageArchivePacksInputs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bl, err := blobs.NewDir(root)
	require.NoError(t, err)
	var entries []entry
	want := map[int]string{}
	for i := range 1203 {
		body := fmt.Sprintf("item %d %s", i, strings.Repeat("x", i%37))
		if i == 600 {
			body = strings.Repeat("L", packBytes+10) // its own blob
		}
		if i == 601 {
			body = "" // an empty member is a zero-length range
		}
		entries = append(entries, entry{name: fmt.Sprintf("%04d.txt", i), body: body})
		want[i] = body
	}
	s := &Service{Blobs: bl}
	items, err := s.stageArchive(ctx, "b1", writeZip(t, entries), Limits{MaxItemBytes: 2 * packBytes, MaxTotal: 64 << 20})
	require.NoError(t, err)
	require.Len(t, items, 1203)

	files, err := filepath.Glob(filepath.Join(root, "batches", "b1", "in", "*"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	require.ElementsMatch(t, []string{"pack-0", "pack-1", "pack-2", "600"}, names, "three packs and the large member's own blob")
	require.Equal(t, inputKey("b1", 600), items[600].Input)
	require.True(t, strings.HasPrefix(items[0].Input, packKey("b1", 0)+"#"), items[0].Input)
	require.True(t, strings.HasPrefix(items[1202].Input, packKey("b1", 2)+"#"), items[1202].Input)

	a := &Activities{Blobs: bl}
	packs := &packCache{blobs: bl}
	for _, it := range items {
		body, _, fail, err := a.input(ctx, "b1", it)
		require.NoError(t, err)
		require.Empty(t, fail)
		require.Equal(t, want[it.Index], string(body), "item %d on the worker's path", it.Index)
		body, _, fail, err = a.inputFrom(ctx, "b1", it, packs)
		require.NoError(t, err)
		require.Empty(t, fail)
		require.Equal(t, want[it.Index], string(body), "item %d through the pack cache", it.Index)
	}
	packs.keepOnly(items[1100:])
	require.Len(t, packs.packs, 1, "a window's packs only")

	bad := store.BatchItem{Index: 9, Name: "x.txt", Input: packKey("b1", 2) + "#0+99999999"}
	_, _, fail, err := a.input(ctx, "b1", bad)
	require.NoError(t, err)
	require.Contains(t, fail, "ends before byte")
	_, _, fail, err = a.inputFrom(ctx, "b1", bad, &packCache{blobs: bl})
	require.NoError(t, err)
	require.Contains(t, fail, "outside its pack")
	_, _, fail, err = a.input(ctx, "b1", store.BatchItem{Input: packKey("b1", 2) + "#zz"})
	require.NoError(t, err)
	require.Contains(t, fail, "bad range")

	require.NoError(t, os.Remove(filepath.Join(root, "batches", "b1", "in", "pack-1")))
	_, _, fail, err = a.inputFrom(ctx, "b1", items[700], &packCache{blobs: bl})
	require.NoError(t, err)
	require.Equal(t, "the item's input is gone from the blob store", fail)
	_, _, fail, err = a.input(ctx, "b1", items[700])
	require.NoError(t, err)
	require.Equal(t, "the item's input is gone from the blob store", fail)
}
