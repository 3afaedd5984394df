package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBatchItemsAreRecordedOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		u, err := s.CreateUser(ctx, "u")
		require.NoError(t, err)
		require.NoError(t, s.CreateAlgorithm(ctx, Algorithm{ID: "a1", OwnerID: u.ID, Name: "n", APIName: "seg"}))
		items := make([]BatchItem, 1200) // more than one INSERT statement
		for i := range items {
			items[i] = BatchItem{Index: i, Name: "f.png", Input: "k"}
		}
		require.NoError(t, s.CreateBatch(ctx, Batch{ID: "b1", AlgorithmID: "a1", OwnerID: u.ID, Source: "archive", Concurrency: 2}, items))
		require.ErrorIs(t, s.CreateBatch(ctx, Batch{ID: "b1", AlgorithmID: "a1", OwnerID: u.ID, Source: "archive", Concurrency: 2}, nil), ErrConflict)
		n, err := s.CountActiveBatches(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		ok, err := s.SetBatchStatus(ctx, "b1", BatchRunning, "")
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.FinishBatchItem(ctx, "b1", 7, ItemResult{Status: ItemSucceeded, OutputKey: "o"})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.FinishBatchItem(ctx, "b1", 7, ItemResult{Status: ItemFailed, Error: "again"})
		require.NoError(t, err)
		require.False(t, ok, "a recorded item is not recorded again")
		ok, err = s.FinishBatchItem(ctx, "b1", 8, ItemResult{Status: ItemFailed, Error: "boom", HTTPStatus: 400})
		require.NoError(t, err)
		require.True(t, ok)

		b, err := s.GetBatch(ctx, "a1", "b1")
		require.NoError(t, err)
		require.Equal(t, 1200, b.Total)
		require.Equal(t, 1, b.Done)
		require.Equal(t, 1, b.Failed)
		require.NotNil(t, b.StartedAt)
		_, err = s.GetBatch(ctx, "other", "b1")
		require.ErrorIs(t, err, ErrNotFound)

		done, failed, err := s.FinishBatchItems(ctx, "b1", []IndexedResult{
			{Index: 9, ItemResult: ItemResult{Status: ItemSucceeded}}, {Index: 7, ItemResult: ItemResult{Status: ItemSucceeded}},
			{Index: 20, ItemResult: ItemResult{Status: ItemFailed, Error: "x"}}})
		require.NoError(t, err)
		require.Equal(t, []int{1, 1}, []int{done, failed}, "item 7 was recorded before")

		pending, err := s.PendingBatchItems(ctx, "b1", 0, 10)
		require.NoError(t, err)
		require.Len(t, pending, 7)
		failedItems, err := s.BatchItems(ctx, "b1", ItemFailed, 0, 0)
		require.NoError(t, err)
		require.Equal(t, []int{8, 20}, []int{failedItems[0].Index, failedItems[1].Index})
		require.Equal(t, "boom", failedItems[0].Error)

		ok, err = s.SetBatchStatus(ctx, "b1", BatchCanceled, "")
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.SetBatchStatus(ctx, "b1", BatchSucceeded, "")
		require.NoError(t, err)
		require.False(t, ok, "an ended batch keeps its status")
		done, failed, err = s.FinishBatchItems(ctx, "b1", []IndexedResult{{Index: 30, ItemResult: ItemResult{Status: ItemSucceeded}}})
		require.NoError(t, err)
		require.Zero(t, done+failed, "nothing is recorded after a cancel")
		b, err = s.BatchByID(ctx, "b1")
		require.NoError(t, err)
		require.Equal(t, BatchCanceled, b.Status)
		require.Equal(t, 2, b.Done)
		require.Equal(t, 2, b.Failed)
		require.NotNil(t, b.CompletedAt)
		list, err := s.ListBatches(ctx, "a1", BatchPage{CreatedAt: b.CreatedAt.Add(time.Microsecond)}, 10)
		require.NoError(t, err)
		require.Len(t, list, 1)
	})
}

// TestListBatchesPages pages through batches, some created in the same
// instant: every batch is listed once, newest first, whatever the page size.
func TestListBatchesPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		u, err := s.CreateUser(ctx, "u")
		require.NoError(t, err)
		require.NoError(t, s.CreateAlgorithm(ctx, Algorithm{ID: "a1", OwnerID: u.ID, Name: "n", APIName: "seg"}))
		clock := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return clock }
		var want []string
		for i := 0; i < 7; i++ {
			if i%3 == 0 {
				clock = clock.Add(time.Second) // three batches share each instant
			}
			id := fmt.Sprintf("b%d", i)
			require.NoError(t, s.CreateBatch(ctx, Batch{ID: id, AlgorithmID: "a1", OwnerID: u.ID, Source: "urls", Concurrency: 1},
				[]BatchItem{{Index: 0, Name: "x", Input: "k"}}))
			want = append([]string{id}, want...)
		}
		for _, size := range []int{1, 2, 3, 100} {
			var got []string
			var after BatchPage
			for range 10 {
				page, err := s.ListBatches(ctx, "a1", after, size)
				require.NoError(t, err)
				if len(page) == 0 {
					break
				}
				for _, b := range page {
					got = append(got, b.ID)
				}
				last := page[len(page)-1]
				after = BatchPage{CreatedAt: last.CreatedAt, ID: last.ID}
			}
			require.Equal(t, want, got, "page size %d", size)
		}
	})
}

// TestBatchS3Sealed: the sealed S3 credentials are written by CreateBatch,
// read only by BatchS3Sealed (never by the batch's reads), and removed by
// ClearBatchS3 or, once the batch ended, by ClearEndedBatchesS3.
func TestBatchS3Sealed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		u, err := s.CreateUser(ctx, "u")
		require.NoError(t, err)
		require.NoError(t, s.CreateAlgorithm(ctx, Algorithm{ID: "a1", OwnerID: u.ID, Name: "n", APIName: "seg"}))
		items := []BatchItem{{Index: 0, Name: "a.png", Input: "s3:in/a.png"}}
		for _, id := range []string{"b1", "b2"} {
			require.NoError(t, s.CreateBatch(ctx, Batch{ID: id, AlgorithmID: "a1", OwnerID: u.ID, Source: "s3", Concurrency: 1,
				OutputURI: "s3://bk/out/", S3Sealed: []byte("sealed-" + id)}, items))
		}
		require.NoError(t, s.CreateBatch(ctx, Batch{ID: "b3", AlgorithmID: "a1", OwnerID: u.ID, Source: "urls", Concurrency: 1}, items))
		b, err := s.GetBatch(ctx, "a1", "b1")
		require.NoError(t, err)
		require.Equal(t, "s3://bk/out/", b.OutputURI)
		require.Nil(t, b.S3Sealed, "reads never carry the sealed credentials")
		box, err := s.BatchS3Sealed(ctx, "b1")
		require.NoError(t, err)
		require.Equal(t, []byte("sealed-b1"), box)
		box, err = s.BatchS3Sealed(ctx, "b3")
		require.NoError(t, err)
		require.Nil(t, box)
		_, err = s.BatchS3Sealed(ctx, "nosuch")
		require.ErrorIs(t, err, ErrNotFound)

		require.NoError(t, s.ClearBatchS3(ctx, "b1", "write manifest.json: AccessDenied"))
		box, err = s.BatchS3Sealed(ctx, "b1")
		require.NoError(t, err)
		require.Nil(t, box)
		b, err = s.BatchByID(ctx, "b1")
		require.NoError(t, err)
		require.Equal(t, "write manifest.json: AccessDenied", b.Error)

		// The sweep takes ended batches only.
		n, err := s.ClearEndedBatchesS3(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Zero(t, n, "b2 is queued")
		ok, err := s.SetBatchStatus(ctx, "b2", BatchFailed, "x")
		require.NoError(t, err)
		require.True(t, ok)
		n, err = s.ClearEndedBatchesS3(ctx, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Zero(t, n, "b2 ended after the cut-off")
		n, err = s.ClearEndedBatchesS3(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		box, err = s.BatchS3Sealed(ctx, "b2")
		require.NoError(t, err)
		require.Nil(t, box)
	})
}

// benchBatchStore opens a SQLite store in a temporary folder with a user
// and an algorithm ("a1"), and makes a 2,000-item archive batch's items.
func benchBatchStore(b *testing.B) (*Store, User, []BatchItem) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "algocloud.db"))
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, s.Close()) })
	u, err := s.CreateUser(ctx, "u")
	require.NoError(b, err)
	require.NoError(b, s.CreateAlgorithm(ctx, Algorithm{ID: "a1", OwnerID: u.ID, Name: "n", APIName: "seg"}))
	items := make([]BatchItem, 2000)
	for i := range items {
		items[i] = BatchItem{Index: i, Name: fmt.Sprintf("img-%05d.png", i),
			Input: fmt.Sprintf("batches/bat_0123456789abcdef01234567/in/pack-%d#%d+%d", i/500, i*90, 90)}
	}
	return s, u, items
}

// BenchmarkCreateBatch stores a batch of 2,000 archive items on SQLite: the
// insert lies between the batch's created_at and its workflow's start.
func BenchmarkCreateBatch(b *testing.B) {
	ctx := context.Background()
	s, u, items := benchBatchStore(b)
	b.ResetTimer()
	for i := range b.N {
		require.NoError(b, s.CreateBatch(ctx, Batch{ID: fmt.Sprintf("bat_%024d", i), AlgorithmID: "a1", OwnerID: u.ID, Source: "archive", Concurrency: 2}, items))
	}
}

// BenchmarkPendingBatchItems reads a 2,000-item batch's pending items: the
// first thing a chunk does, before its first predict.
func BenchmarkPendingBatchItems(b *testing.B) {
	ctx := context.Background()
	s, u, items := benchBatchStore(b)
	require.NoError(b, s.CreateBatch(ctx, Batch{ID: "bat_1", AlgorithmID: "a1", OwnerID: u.ID, Source: "archive", Concurrency: 2}, items))
	b.ResetTimer()
	for range b.N {
		got, err := s.PendingBatchItems(ctx, "bat_1", 0, 2000)
		require.NoError(b, err)
		require.Len(b, got, 2000)
	}
}

// BenchmarkFinishBatchItems records a 2,000-item batch's results in parts of
// 500, as a chunk on a server's agent does.
func BenchmarkFinishBatchItems(b *testing.B) {
	ctx := context.Background()
	s, u, items := benchBatchStore(b)
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("bat_%d", n)
		require.NoError(b, s.CreateBatch(ctx, Batch{ID: id, AlgorithmID: "a1", OwnerID: u.ID, Source: "archive", Concurrency: 2}, items))
		b.StartTimer()
		for from := 0; from < len(items); from += 500 {
			rs := make([]IndexedResult, 0, 500)
			for i := from; i < from+500; i++ {
				rs = append(rs, IndexedResult{Index: i, ItemResult: ItemResult{Status: ItemSucceeded, HTTPStatus: 200, ContentType: "image/png",
					OutputKey: fmt.Sprintf("batches/%s/parts/0-2000/%d#%d+%d", id, from/500, i*100, 100)}})
			}
			done, _, err := s.FinishBatchItems(ctx, id, rs)
			require.NoError(b, err)
			require.Equal(b, 500, done)
		}
	}
}
