//go:build race

package sentiment

// raceEnabled: sync.Pool drops items at random under the race detector.
const raceEnabled = true
