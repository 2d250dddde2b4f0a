// A RoadRunner binary with the plugins a Centrifugo proxy needs: config, logger, server (the
// worker pool), rpc and centrifuge. It is what RoadRunner's build tool (velox) would generate
// from a plugin list; the official `rr` root module is not needed.
//
//	rr serve -c .rr.yaml [-w workdir] [-o key=value ...]
//	rr version
//
// scripts/install-roadrunner builds it with the versions pinned in go.mod.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/roadrunner-server/centrifuge/v5"
	"github.com/roadrunner-server/config/v5"
	"github.com/roadrunner-server/endure/v2"
	"github.com/roadrunner-server/logger/v5"
	"github.com/roadrunner-server/rpc/v5"
	"github.com/roadrunner-server/server/v5"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "local"

type overrides []string

func (o *overrides) String() string     { return strings.Join(*o, ",") }
func (o *overrides) Set(v string) error { *o = append(*o, v); return nil }

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "version" {
		fmt.Printf("rr version %s (centrifugo-types build)\n", version)
		return
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("rr serve", flag.ExitOnError)
	cfgPath := fs.String("c", ".rr.yaml", "path to the configuration file")
	workDir := fs.String("w", "", "working directory")
	var flags overrides
	fs.Var(&flags, "o", "override a configuration key: -o key=value (repeatable)")
	_ = fs.Parse(args)

	if *workDir != "" {
		if err := os.Chdir(*workDir); err != nil {
			fatal(err)
		}
	}
	cfg := &config.Plugin{
		Path:    *cfgPath,
		Flags:   flags,
		Version: version,
		Timeout: 30 * time.Second,
	}
	container := endure.New(slog.LevelError, endure.GracefulShutdownTimeout(30*time.Second))
	err := container.RegisterAll(
		cfg,
		&logger.Plugin{},
		&server.Plugin{},
		&rpc.Plugin{},
		&centrifuge.Plugin{},
	)
	if err != nil {
		fatal(err)
	}
	if err = container.Init(); err != nil {
		fatal(err)
	}
	errCh, err := container.Serve()
	if err != nil {
		fatal(err)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	select {
	case e := <-errCh:
		_ = container.Stop()
		fatal(fmt.Errorf("%s: %w", e.VertexID, e.Error))
	case <-stop:
		if err := container.Stop(); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "rr:", err)
	os.Exit(1)
}
