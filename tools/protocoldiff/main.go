// Command protocoldiff compares an official Airbyte protocol definition
// (airbyte_protocol.yaml of a release) with the project's schema
// (schemas/airbyte_protocol.schema.json) and prints, definition by
// definition, what the schema lacks, adds, or types differently, and which
// enum values differ. With --allow it leaves out the differences the
// allow-list explains, reports entries that explain nothing, and exits 1
// if anything is left: the first step of a protocol upgrade (see the
// README).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"destination-keen/tools/protocoldiff/diff"
)

func main() {
	ours := pflag.String("schema", "schemas/airbyte_protocol.schema.json", "the project's protocol schema")
	allow := pflag.String("allow", "", "an allow-list of known differences (schemas/protocoldiff.allow)")
	pflag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: protocoldiff [--schema FILE] [--allow FILE] OFFICIAL.yaml")
		pflag.PrintDefaults()
	}
	pflag.Parse()
	if pflag.NArg() != 1 {
		pflag.Usage()
		os.Exit(2)
	}
	code, err := run(pflag.Arg(0), *ours, *allow)
	if err != nil {
		fmt.Fprintln(os.Stderr, "protocoldiff:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(officialPath, oursPath, allowPath string) (int, error) {
	official, err := diff.Load(officialPath)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", officialPath, err)
	}
	ours, err := diff.Load(oursPath)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", oursPath, err)
	}
	diffs := diff.Compare(official, ours)
	if allowPath == "" {
		for _, d := range diffs {
			fmt.Println(d)
		}
		return 0, nil
	}
	allowed, err := diff.ReadAllowList(allowPath)
	if err != nil {
		return 0, err
	}
	left, stale := diff.Filter(diffs, allowed)
	for _, d := range left {
		fmt.Println(d)
	}
	for _, a := range stale {
		fmt.Printf("stale allow-list entry (nothing to explain): %s %s\n", a.Kind, a.Path)
	}
	fmt.Fprintf(os.Stderr, "%d differences, %d explained by %s, %d left; %d stale entries\n", len(diffs), len(diffs)-len(left), allowPath, len(left), len(stale))
	if len(left)+len(stale) > 0 {
		return 1, nil
	}
	return 0, nil
}
