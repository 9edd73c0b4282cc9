//go:build !race

package main

// raceDetector: this test binary, and so the connector it runs, was built
// with -race, which multiplies memory use.
const raceDetector = false
