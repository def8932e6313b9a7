package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/kubefrontdoor/frontdoor/source"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// runCheck validates a config directory offline, exactly as `frontdoor serve
// --config-dir` would read and translate it, and prints each
// UpstreamCluster's conditions. It fails if a file does not parse or an
// UpstreamCluster is rejected.
func runCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	dir := fs.String("config-dir", "", "directory of UpstreamCluster, Secret and EndpointSlice YAML files to validate (required)")
	rls := fs.String("ratelimit-address", "", rateLimitAddressUsage+"; check as the gateway that has it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkRateLimitAddress(*rls); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--config-dir is required")
	}

	var fileErrs []string
	src := &source.Dir{
		Path: *dir,
		Log:  slog.New(slog.DiscardHandler),
		OnFileError: func(path string, err error) {
			fileErrs = append(fileErrs, fmt.Sprintf("%s: %v", path, err))
		},
	}
	in, err := src.Load()
	if err != nil {
		return fmt.Errorf("--config-dir: %w", err)
	}
	in.Options.RateLimitAddress = *rls
	out := translator.Translate(in)

	for _, e := range fileErrs {
		fmt.Fprintf(stdout, "file %s\n", e)
	}
	rejected := 0
	for _, st := range out.Statuses {
		ok, _ := status.AllTrue(st.Conditions)
		verdict := "accepted"
		if !ok {
			verdict = "REJECTED"
			rejected++
		}
		fmt.Fprintf(stdout, "UpstreamCluster %s (generation %d): %s, %d servers\n", st.Name, st.ObservedGeneration, verdict, st.ServerCount)
		for _, c := range st.Conditions {
			fmt.Fprintf(stdout, "  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	if len(out.Statuses) == 0 {
		fmt.Fprintln(stdout, "no UpstreamCluster found")
	}
	var problems []string
	if len(fileErrs) > 0 {
		problems = append(problems, fmt.Sprintf("%d file(s) do not parse", len(fileErrs)))
	}
	if rejected > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d UpstreamCluster(s) rejected", rejected, len(out.Statuses)))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
