// Command destination-keen is the Airbyte destination for Keen. It parses the
// command line, runs spec or check from package connector or write from
// package write, and turns the final error into one TRACE message and an
// exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	// Mozilla's roots, compiled in: used only where the system has no trust
	// store (the image is built on nothing); SSL_CERT_FILE or a system store
	// take precedence, as before.
	_ "golang.org/x/crypto/x509roots/fallback"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/connector"
	"destination-keen/internal/write"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed; a TRACE says why
	exitUsage = 2 // the command line is wrong; usage is on stderr
)

func main() { os.Exit(mainCode()) }

func mainCode() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A reader that closes stdout gets EPIPE errors, which end the sync with
	// a message on stderr, instead of the silent death SIGPIPE would bring.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	var stdin io.Reader = os.Stdin
	if len(os.Args) > 1 && os.Args[1] == "write" {
		stdin = pollableStdin()
		// A terminal's stdin is shared with the shell: give it back blocking.
		defer func() { _ = syscall.SetNonblock(syscall.Stdin, false) }()
	}
	return run(ctx, os.Args[1:], stdin, os.Stdout, os.Stderr)
}

// pollableStdin returns stdin read through Go's poller where it can be, so
// that closing it ends a read in progress: a sync that stops on a failure
// or a signal does not wait for the source's next line.
func pollableStdin() io.Reader {
	if err := syscall.SetNonblock(syscall.Stdin, true); err != nil {
		return os.Stdin
	}
	return os.NewFile(uintptr(syscall.Stdin), "/dev/stdin")
}

const usage = `destination-keen %s: the Airbyte destination for Keen (keen.io).

Usage:
  destination-keen spec
  destination-keen check --config CONFIG.json
  destination-keen write --config CONFIG.json --catalog CATALOG.json < messages
  destination-keen --version | --help

stdout carries Airbyte protocol messages only, one JSON object per line.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, connector.Version)
		return exitUsage
	}
	switch args[0] {
	case "--help", "-h", "help":
		fmt.Fprintf(stdout, usage, connector.Version)
		return exitOK
	case "--version", "version":
		fmt.Fprintln(stdout, connector.Version)
		return exitOK
	}

	cmd := args[0]
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, connector.Version)
		fmt.Fprintf(stderr, "\nFlags of %s:\n%s", cmd, fs.FlagUsages())
	}
	var configPath, catalogPath string
	var required []string
	switch cmd {
	case "spec":
	case "check":
		fs.StringVar(&configPath, "config", "", "path to the connector config (JSON)")
		required = []string{"config"}
	case "write":
		fs.StringVar(&configPath, "config", "", "path to the connector config (JSON)")
		fs.StringVar(&catalogPath, "catalog", "", "path to the configured catalog (JSON)")
		required = []string{"config", "catalog"}
	default:
		fmt.Fprintf(stderr, "destination-keen: unknown command %q\n\n", cmd)
		fmt.Fprintf(stderr, usage, connector.Version)
		return exitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "destination-keen %s: %v\n", cmd, err)
		fs.Usage()
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "destination-keen %s: unexpected argument %q\n", cmd, fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	for _, name := range required {
		if !fs.Changed(name) {
			fmt.Fprintf(stderr, "destination-keen %s: --%s is required\n", cmd, name)
			fs.Usage()
			return exitUsage
		}
	}

	em := airbyte.NewEmitter(stdout)
	var err error
	switch cmd {
	case "spec":
		err = connector.RunSpec(em)
	case "check":
		err = connector.RunCheck(ctx, em, configPath, connector.OnlineProbes(nil)...)
	case "write":
		err = write.Run(ctx, em, configPath, catalogPath, stdin, write.Options{GoroutineReport: os.Getenv("DESTINATION_KEEN_GOROUTINE_REPORT") == "1"})
	}
	return finish(em, err, stderr)
}

// finish is the one final-error handler: any error becomes one TRACE on
// stdout and exit code 1.
func finish(em *airbyte.Emitter, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if werr := em.TraceError(err); werr != nil {
		// stdout is gone; stderr is all that is left.
		fmt.Fprintln(stderr, "destination-keen: cannot write to stdout:", werr)
	}
	return exitFail
}
