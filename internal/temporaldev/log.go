package temporaldev

import (
	"context"
	"log/slog"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// slogAdapter turns the server's tag logger into slog records at or above level.
type slogAdapter struct {
	log   *slog.Logger
	level slog.Level
}

var _ log.Logger = (*slogAdapter)(nil)

func (l *slogAdapter) emit(level slog.Level, msg string, tags []tag.Tag) {
	if level < l.level || !l.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]any, 0, len(tags)+1)
	attrs = append(attrs, slog.String("component", "temporal"))
	for _, t := range tags {
		attrs = append(attrs, slog.Any(t.Key(), t.Value()))
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

func (l *slogAdapter) Debug(msg string, tags ...tag.Tag)  { l.emit(slog.LevelDebug, msg, tags) }
func (l *slogAdapter) Info(msg string, tags ...tag.Tag)   { l.emit(slog.LevelInfo, msg, tags) }
func (l *slogAdapter) Warn(msg string, tags ...tag.Tag)   { l.emit(slog.LevelWarn, msg, tags) }
func (l *slogAdapter) Error(msg string, tags ...tag.Tag)  { l.emit(slog.LevelError, msg, tags) }
func (l *slogAdapter) DPanic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }
func (l *slogAdapter) Panic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(msg)
}
func (l *slogAdapter) Fatal(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(msg)
}
