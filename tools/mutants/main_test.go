package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestListFollowsTheCode: every mutant's text occurs exactly once in its
// file, so that a change to the code that moves a planted bug's place is
// found by make test, not minutes into make mutants.
func TestListFollowsTheCode(t *testing.T) {
	names := map[string]bool{}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			if names[m.name] {
				t.Fatalf("two mutants are named %q", m.name)
			}
			names[m.name] = true
			b, err := os.ReadFile(filepath.Join("..", "..", m.file))
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(b, []byte(m.from)); n != 1 {
				t.Fatalf("%q occurs %d times in %s, want once", m.from, n, m.file)
			}
			if m.from == m.to {
				t.Fatal("the mutant changes nothing")
			}
		})
	}
}
