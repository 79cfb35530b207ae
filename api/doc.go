// Package api holds the JSON documents of healproxy's diagnostics and
// admin endpoints: what the proxy writes and what clients (the chaos and
// soak runs, the end-to-end tests) read. Field order, JSON names,
// omitempty and pointer-for-null are the contract (docs/behaviour.md, "The
// health document and self-heal"); change none of them without changing
// that contract. The package imports only the standard library.
package api
