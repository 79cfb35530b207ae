// Package proto holds the generated gRPC code for the healproxy model plugin
// protocol (model.proto). Do not edit the *.pb.go files by hand.
package proto

//go:generate bash ../../scripts/gen-proto.sh
