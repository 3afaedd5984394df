package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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

// nextCut returns where the part starting at record from ends when it is
// full (partItems records, or partBytes of them), or -1 while it is not.
func nextCut(ends []int64, from, partItems int, partBytes int64) int {
	var start int64
	if from > 0 {
		start = ends[from-1]
	}
	for i := from; i < len(ends); i++ {
		if i+1-from >= partItems || ends[i]-start >= partBytes {
			return i + 1
		}
	}
	return -1
}

// partCuts are the record counts at which a chunk's result parts end, one
// line each in a file beside the journal, written before the part is
// uploaded: a part's records are fixed once cut (a part that is full, or
// one that waited partEvery), so a re-run uploads the same bytes under the
// same names, never a part cut differently.
type partCuts struct {
	f    *os.File
	ends []int
}

// openPartCuts reads the cuts, dropping a torn last line and any cut past
// the journal's records (its records were lost with the page cache).
func openPartCuts(path string, records int) (*partCuts, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read part cuts: %w", err)
	}
	c := &partCuts{}
	good := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(string(b[:i]))
		if err != nil || n <= c.last() || n > records {
			break
		}
		c.ends = append(c.ends, n)
		good += i + 1
		b = b[i+1:]
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open part cuts: %w", err)
	}
	if err := f.Truncate(int64(good)); err != nil {
		f.Close()
		return nil, fmt.Errorf("open part cuts: %w", err)
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open part cuts: %w", err)
	}
	c.f = f
	return c, nil
}

// last is where the next part starts.
func (c *partCuts) last() int {
	if len(c.ends) == 0 {
		return 0
	}
	return c.ends[len(c.ends)-1]
}

// add cuts a part ending at record to.
func (c *partCuts) add(to int) error {
	if _, err := c.f.Write([]byte(strconv.Itoa(to) + "\n")); err != nil {
		return fmt.Errorf("write part cut: %w", err)
	}
	c.ends = append(c.ends, to)
	return nil
}

func (c *partCuts) close() error { return c.f.Close() }
