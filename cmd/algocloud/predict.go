package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// predict calls a deployed endpoint with one input.
func predict(args []string) error {
	fs := flag.NewFlagSet("predict", flag.ExitOnError)
	endpoint := fs.String("endpoint", env("ENDPOINT", ""), "the endpoint's URL, as algocloud deploy printed it ($ALGOCLOUD_ENDPOINT)")
	token := fs.String("token", "", "the endpoint token (default $ALGOCLOUD_ENDPOINT_TOKEN, which keeps it out of process lists)")
	api := fs.String("api", env("API", apiclient.DefaultBaseURL), "the platform's API URL ($ALGOCLOUD_API): where --async predictions are made and the hint for a missing --ca points")
	caFile := fs.String("ca", "", "PEM file of the root that signs the endpoint's certificate (the platform's /api/ca.pem); default: the system's roots")
	output := fs.String("o", "", "write the output to this file (default: JSON to stdout; an image, array or file to output.png, output.npy or the name the algorithm gave)")
	contentType := fs.String("content-type", "", "send the input with this Content-Type instead of the one guessed from it")
	filename := fs.String("filename", "", "the input's file name, for file inputs (default: INPUT's name)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	var async asyncFlags
	async.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: algocloud predict --endpoint URL [--ca FILE] [-o OUTPUT] INPUT
       algocloud predict --async [--wait [-o OUTPUT]] [-q] [--webhook URL] API_NAME INPUT

Sends INPUT (a file; - for stdin; an http(s) URL of an image for the endpoint
to download) to the endpoint's /predict. PNG, JPEG and GIF go as images, .npy
as arrays, JSON as JSON, anything else as a named file. JSON answers go to
stdout; images, arrays and files to -o (or a default name).

With --async, INPUT becomes an async prediction of the endpoint API_NAME on
the platform (--api): it runs there, durably, and the command prints its id
(algocloud predictions get|wait|cancel API_NAME ID follow it); --wait waits
and writes the output as above, and what predict printed (its logs) to
stderr between "--- logs of prediction ID ---" and "--- end of logs ---"
(-q: no logs, no progress). The token is --token, else
$ALGOCLOUD_ENDPOINT_TOKEN, else $ALGOCLOUD_TOKEN (yours).

`)
		fs.PrintDefaults()
	}
	rest := parseInterspersed(fs, args)
	if async.async {
		if len(rest) != 2 {
			fs.Usage()
			return errors.New("predict --async takes API_NAME and one input")
		}
		in, err := readInput(rest[1])
		if err != nil {
			return err
		}
		if *contentType != "" {
			in.ContentType = *contentType
		}
		if *filename != "" {
			in.Filename = *filename
		}
		c, err := jobsClient(*api, *token)
		if err != nil {
			return err
		}
		ctx, stop := interruptible()
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return predictAsync(ctx, c, async, rest[0], rest[1], *output, in)
	}
	if async.wait || async.webhook != "" {
		return errors.New("--wait and --webhook go with --async")
	}
	if len(rest) != 1 {
		fs.Usage()
		return errors.New("predict takes one input")
	}
	if *endpoint == "" {
		return errors.New("--endpoint is required (algocloud deploy and algocloud ls show it)")
	}
	if *token == "" {
		*token = env("ENDPOINT_TOKEN", "")
	}
	if strings.TrimSpace(*token) == "" {
		return errors.New("no endpoint token: set ALGOCLOUD_ENDPOINT_TOKEN (Complete Deployment showed it) or pass --token")
	}
	in, err := readInput(rest[0])
	if err != nil {
		return err
	}
	if *contentType != "" {
		in.ContentType = *contentType
	}
	if *filename != "" {
		in.Filename = *filename
	}
	var caPEM []byte
	if *caFile != "" {
		if caPEM, err = os.ReadFile(*caFile); err != nil {
			return fmt.Errorf("read the CA root: %w", err)
		}
	}
	hc, err := apiclient.EndpointClient(caPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", *caFile, err)
	}
	ctx, stop := interruptible()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out, err := apiclient.Predict(ctx, hc, *endpoint, *token, in)
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) && apiErr.Traceback != "" {
		fmt.Fprintf(os.Stderr, "%s\n", strings.TrimRight(apiErr.Traceback, "\n"))
	}
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) && *caFile == "" {
		return fmt.Errorf("%w\n%s", err, missingCAHint(*api))
	}
	if err != nil {
		return err
	}
	return writeOutput(out, *output)
}

// missingCAHint tells how to get the root that signs dev endpoints: the
// platform's /api/ca.pem, named by its full URL so it can be pasted.
func missingCAHint(api string) string {
	u := strings.TrimRight(api, "/") + "/api/ca.pem"
	return fmt.Sprintf("(the platform's own CA signs endpoint certificates in dev: download it with\n  curl -sS --fail -o algocloud-ca.pem %s\nand pass --ca algocloud-ca.pem)", u)
}

// readInput reads INPUT: a file, - for stdin, or an image URL.
func readInput(arg string) (apiclient.Input, error) {
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		return apiclient.SniffInput(arg, nil), nil
	}
	var (
		data []byte
		err  error
	)
	if arg == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(arg)
	}
	if err != nil {
		return apiclient.Input{}, fmt.Errorf("read the input: %w", err)
	}
	if len(data) == 0 {
		return apiclient.Input{}, fmt.Errorf("the input %s is empty", arg)
	}
	return apiclient.SniffInput(arg, data), nil
}

// writeOutput puts the answer where -o says, or where its kind goes by default.
func writeOutput(out apiclient.Output, dest string) error {
	if out.ContentType == apiclient.JSONType && out.Filename == "" && dest == "" {
		var b bytes.Buffer
		if json.Indent(&b, out.Body, "", "  ") != nil {
			b.Reset()
			b.Write(out.Body)
		}
		b.WriteByte('\n')
		_, err := os.Stdout.Write(b.Bytes())
		return err
	}
	if dest == "-" || (dest == "" && !isTerminal(os.Stdout) && out.Filename == "") {
		_, err := os.Stdout.Write(out.Body) // piped: the bytes themselves
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if dest == "" {
		// A name of our choosing, or the algorithm's: never overwrite with it.
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
		switch {
		case out.Filename != "":
			dest = out.Filename
		case out.ContentType == "image/png":
			dest = "output.png"
		case out.ContentType == apiclient.NPYType:
			dest = "output.npy"
		default:
			dest = "output.bin"
		}
	}
	f, err := os.OpenFile(dest, flags, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: pass -o FILE to choose where the output goes", dest)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(out.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s, %s)\n", dest, out.ContentType, size(int64(len(out.Body))))
	return nil
}
