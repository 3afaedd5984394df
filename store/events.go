package store

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one line of an algorithm's progress log (pip output, test results,
// provisioning steps), shown while long steps run.
type Event struct {
	ID          int64 // increasing; page with ListEvents' afterID
	AlgorithmID string
	At          time.Time
	Kind        string
	Message     string
}

// MaxEventMessage is the most bytes of a message AddEvent keeps.
const MaxEventMessage = 8 << 10

// Page sizes for ListEvents.
const (
	// DefaultEventPage is the page size when ListEvents is given no limit.
	DefaultEventPage = 100
	// MaxEventPage is the largest page ListEvents returns.
	MaxEventPage = 1000
)

// AddEvent appends an event to the algorithm's log. The message is made valid
// UTF-8 without NUL bytes (PostgreSQL text accepts nothing else, and process output
// may hold anything) and cut to MaxEventMessage bytes on a character boundary. An
// unknown algorithm gives ErrNotFound.
func (s *Store) AddEvent(ctx context.Context, algorithmID, kind, message string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO events (algorithm_id, at, kind, message) VALUES (?, ?, ?, ?)`),
		algorithmID, dbTime(s.now()), cleanText(kind, 200), cleanText(message, MaxEventMessage))
	if classify(err) == foreignKeyViolation {
		return fmt.Errorf("add event: algorithm %s: %w", algorithmID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add event to algorithm %s: %w", algorithmID, err)
	}
	return nil
}

// ListEvents returns the algorithm's events with IDs above afterID, oldest first,
// at most limit of them (DefaultEventPage when limit <= 0, never more than
// MaxEventPage). Pass the last ID seen as afterID to fetch the next page; 0 starts
// at the beginning. An unknown algorithm has no events.
func (s *Store) ListEvents(ctx context.Context, algorithmID string, afterID int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = DefaultEventPage
	}
	limit = min(limit, MaxEventPage)
	var rows []struct {
		ID          int64  `db:"id"`
		AlgorithmID string `db:"algorithm_id"`
		At          dbTime `db:"at"`
		Kind        string `db:"kind"`
		Message     string `db:"message"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT id, algorithm_id, at, kind, message FROM events
		WHERE algorithm_id = ? AND id > ? ORDER BY id LIMIT ?`), algorithmID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of algorithm %s: %w", algorithmID, err)
	}
	out := make([]Event, 0, len(rows))
	for _, r := range rows {
		out = append(out, Event{ID: r.ID, AlgorithmID: r.AlgorithmID, At: time.Time(r.At), Kind: r.Kind, Message: r.Message})
	}
	return out, nil
}

// cleanText makes s valid UTF-8 without NUL bytes and at most limit bytes long,
// cutting on a character boundary.
func cleanText(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
