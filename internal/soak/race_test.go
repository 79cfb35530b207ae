//go:build race

package soak

// raceEnabled: the test runs with -race, so the healproxy binary under
// soak is built with it too.
const raceEnabled = true
