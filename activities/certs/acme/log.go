package acme

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	legolog "github.com/go-acme/lego/v4/log"
)

// RouteLegoLogs sends lego's own log lines ("[INFO] [name] acme: ...") to l,
// "[WARN]" ones as warnings. lego's logger is a package variable, so this is
// process-wide: call it once from main (and TestMain), before any Client
// runs. lego logs names and URLs, never keys.
func RouteLegoLogs(l *slog.Logger) { legolog.Logger = slogStd{l} }

// slogStd is lego's StdLogger on top of slog.
type slogStd struct{ l *slog.Logger }

func (s slogStd) line(msg string) {
	msg = strings.TrimRight(msg, "\n")
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "[WARN] "); ok {
		level, msg = slog.LevelWarn, rest
	} else if rest, ok := strings.CutPrefix(msg, "[INFO] "); ok {
		msg = rest
	}
	s.l.Log(context.Background(), level, msg, "component", "lego")
}

func (s slogStd) Print(args ...any)                 { s.line(fmt.Sprint(args...)) }
func (s slogStd) Println(args ...any)               { s.line(fmt.Sprintln(args...)) }
func (s slogStd) Printf(format string, args ...any) { s.line(fmt.Sprintf(format, args...)) }

// lego calls Fatal only from its command line tool; exit as log.Fatal does.
func (s slogStd) Fatal(args ...any)                 { s.line(fmt.Sprint(args...)); os.Exit(1) }
func (s slogStd) Fatalln(args ...any)               { s.line(fmt.Sprintln(args...)); os.Exit(1) }
func (s slogStd) Fatalf(format string, args ...any) { s.line(fmt.Sprintf(format, args...)); os.Exit(1) }
