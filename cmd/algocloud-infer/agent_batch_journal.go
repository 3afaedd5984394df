package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/algocloud/algocloud/agent/commands"
)

// batchJournal is a batch chunk's results on the server: one append per
// item (commands.AppendBatchRecord), in the order answers came, in the
// agent's own folder (never mounted into a sandbox). A re-run of the same
// command (the agent killed, the command handed out again) reads it back
// and sends only the items it does not hold; a record a killed agent left
// half written is cut off at open. Appends are not fsynced: a killed agent
// leaves its writes in the page cache, and what a power loss takes is sent
// again, as the requests in flight are.
type batchJournal struct {
	mu sync.Mutex
	f  *os.File
	// ends[i] is the offset just past record i: a result part is a run of
	// whole records, read back by offset (readRange).
	ends []int64
	size int64
}

// openBatchJournal opens (or creates) the journal at path and returns the
// results it holds, cutting off a torn tail.
func openBatchJournal(path string) (*batchJournal, []commands.BatchResult, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open batch journal: %w", err)
	}
	j := &batchJournal{f: f}
	var recs []commands.BatchResult
	br := bufio.NewReaderSize(f, 256<<10)
	for {
		r, n, err := commands.ReadBatchRecord(br)
		if err == io.EOF {
			break
		}
		if errors.Is(err, commands.ErrTornRecord) {
			// What a killed agent wrote last, cut short: that item was not
			// journaled and is sent again.
			if terr := f.Truncate(j.size); terr != nil {
				f.Close()
				return nil, nil, fmt.Errorf("cut the torn tail of the batch journal: %w", terr)
			}
			break
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read batch journal: %w", err)
		}
		j.size += int64(n)
		j.ends = append(j.ends, j.size)
		recs = append(recs, r)
	}
	if _, err := f.Seek(j.size, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open batch journal: %w", err)
	}
	return j, recs, nil
}

// append journals r in one write and returns how many records the journal
// holds after it.
func (j *batchJournal) append(r commands.BatchResult) (int, error) {
	b := commands.AppendBatchRecord(nil, r)
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.WriteAt(b, j.size); err != nil {
		// A short write leaves a torn record that the next open cuts off;
		// cut it now too, so the next append starts clean.
		_ = j.f.Truncate(j.size)
		return len(j.ends), fmt.Errorf("append to batch journal: %w", err)
	}
	j.size += int64(len(b))
	j.ends = append(j.ends, j.size)
	return len(j.ends), nil
}

// records returns how many records the journal holds and the end offsets.
func (j *batchJournal) snapshot() []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ends[:len(j.ends):len(j.ends)]
}

// readRange reads records [from, to) as they are in the file.
func (j *batchJournal) readRange(ends []int64, from, to int) ([]byte, error) {
	var start int64
	if from > 0 {
		start = ends[from-1]
	}
	b := make([]byte, ends[to-1]-start)
	if _, err := j.f.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("read batch journal: %w", err)
	}
	return b, nil
}

func (j *batchJournal) close() error { return j.f.Close() }

// batchParts cuts the journal's records into result parts: a part ends
// after partItems records or once it holds partBytes, whichever comes
// first. It depends only on the records (the journal only grows), so a
// re-run cuts the same parts and re-uploads identical bytes under the same
// names. It returns the [from, to) record ranges of the complete parts and,
// when final, the last partial one.
func batchParts(ends []int64, partItems int, partBytes int64, final bool) [][2]int {
	var parts [][2]int
	from := 0
	var start int64
	for i := range ends {
		if i+1-from >= partItems || ends[i]-start >= partBytes {
			parts = append(parts, [2]int{from, i + 1})
			from, start = i+1, ends[i]
		}
	}
	if final && from < len(ends) {
		parts = append(parts, [2]int{from, len(ends)})
	}
	return parts
}
